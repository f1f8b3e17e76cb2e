"""Simulated peers (province, counties, banks, a loopback recorder): real servers on
loopback, used by the tests, the benchmarks and the demo."""
