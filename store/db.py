"""Engine and session set-up, migrations, and the small dialect differences in one place."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store.crypto import DataCipher
from store.private import private_dir, private_file
from store.sealed import bind_cipher

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


#: The execution option that marks a read-only transaction (``Database.read_session``).
READ_ONLY = "hub_read_only"

#: libpq parameters every PostgreSQL connection gets unless its URL sets them: seconds
#: to connect, keep-alive probes after 30 s idle (every 5 s, 3 lost: dead), and 20 s
#: (in ms) for sent data to be acknowledged.
PG_CONNECTION_BOUNDS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30,
                        "keepalives_interval": 5, "keepalives_count": 3,
                        "tcp_user_timeout": 20000}

#: ``PRAGMA synchronous`` values a config may choose (``sqlite_synchronous``).
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


def make_engine(url: str, pool_size: int = 10, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine tuned for the hub: WAL and a busy timeout on SQLite, a pool on PostgreSQL.

    ``sqlite_synchronous``: FULL (the default) syncs the WAL at every commit, so an
    application answered 0000 survives a power failure; NORMAL only survives a process
    crash (README, "SQLite durability", has the measurement behind the default)."""
    from store import resilience

    if sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous: one of {', '.join(SQLITE_SYNCHRONOUS)}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # 0600 before SQLite opens it: its -wal and -shm files take the db file's mode.
            private_file(Path(parsed.database))
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
            hide_parameters=True,
        )
        memory = not parsed.database or parsed.database == ":memory:"
        # first: COMMIT is marked under way before _tune_sqlite's listener commits
        resilience.install(engine)
        _tune_sqlite(engine, None if memory else f"{parsed.database}.writer-lock",
                     sqlite_synchronous.upper())
        return engine
    # No pre-ping (a round trip per checkout on the hot path): connections are recycled
    # before servers or proxies drop them; a lost one invalidates the whole pool and the
    # transaction it broke is retried on a fresh one (store.resilience).
    # hide_parameters: SQL errors (an IntegrityError, ...) never carry row values, which
    # hold personal data, into an exception text or a log.
    # A store that stops answering without refusing (packets dropped, a frozen host) must
    # end in an error, not a wait for ever: libpq's connect time-out, TCP keep-alives, and
    # tcp_user_timeout (data sent and not acknowledged). A busy server still acknowledges,
    # so a long query is not cut short. The URL's own query parameters win.
    bounds = {k: v for k, v in PG_CONNECTION_BOUNDS.items() if k not in parsed.query}
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800,
                           hide_parameters=True, connect_args=bounds)
    resilience.install(engine)  # a lost connection recycles the whole pool (store.resilience)
    return engine


class _WriterQueue:
    """Serialises SQLite write transactions across threads AND processes with ``flock``.

    SQLite allows one writer; a second one waiting on the database lock is put to sleep
    by SQLite's busy handler in growing steps (up to 100 ms), so two busy processes
    spend most of their time asleep. A blocking ``flock`` on a file beside the database
    wakes the next writer the moment the lock is free. The lock is taken at BEGIN and
    released right after COMMIT or ROLLBACK. A transaction opened while the same thread
    already holds the lock (a nested session) does not wait for itself: it falls back
    to SQLite's own locking. This is only about latency: SQLite's locks still decide
    correctness.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._held = threading.local()

    def open_fd(self) -> int:
        private_dir(Path(self.path).parent)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, fd: int) -> bool:
        if getattr(self._held, "depth", 0):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._held.depth = 1
        return True

    def release(self, fd: int) -> None:
        self._held.depth = 0
        fcntl.flock(fd, fcntl.LOCK_UN)


def _tune_sqlite(engine: Engine, lock_path: str | None, synchronous: str = "FULL") -> None:
    queue = _WriterQueue(lock_path) if lock_path else None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy issue BEGIN itself (IMMEDIATE, below) instead of pysqlite's lazy BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Savepoints' journal in memory: each unit of a group commit after the first has
        # a savepoint (store.group_commit), and past 64 KiB SQLite moved that journal to
        # a new temporary file, created and unlinked under the write lock, about once a
        # group (bench/intake.py: 4-5 % of the intake on SQLite). Sorts then stay in
        # memory too: the largest is a day's call-log rollup (admin/stats.py,
        # refresh_rollup: some 70 bytes a call of that day); pages and exports read in
        # pages of a few hundred rows.
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()
        if queue is not None:
            record.info["writer_fd"] = queue.open_fd()

    @event.listens_for(engine, "close")
    def _on_close(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        fd = record.info.pop("writer_fd", None)
        if fd is not None:
            os.close(fd)

    def _fd(conn) -> int | None:  # type: ignore[no-untyped-def]
        return conn.connection._connection_record.info.get("writer_fd")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get(READ_ONLY):
            # A read: a deferred transaction (a snapshot of the WAL) outside the writer
            # queue, so a long export never holds the write lock; query_only refuses a
            # write made through it by mistake.
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("PRAGMA query_only=ON")
            conn.info["read_only"] = True
            return
        fd = _fd(conn)
        if queue is not None and fd is not None and queue.acquire(fd):
            conn.info["writer_locked"] = True
        # Take the write lock at BEGIN so two writers never deadlock upgrading a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _end(conn, finish: str) -> None:  # type: ignore[no-untyped-def]
        if conn.info.pop("read_only", False):
            # the connection goes back to the pool able to write again (a broken one is
            # discarded by the pool)
            with contextlib.suppress(Exception):
                conn.exec_driver_sql("PRAGMA query_only=OFF")
            return
        if not conn.info.pop("writer_locked", False):
            return
        # End the transaction here, then free the queue: SQLAlchemy's own COMMIT/ROLLBACK
        # that follows finds no open transaction and does nothing (autocommit mode).
        try:
            getattr(conn.connection.dbapi_connection, finish)()
        finally:
            queue.release(_fd(conn))  # type: ignore[union-attr]

    @event.listens_for(engine, "commit")
    def _on_commit(conn):  # type: ignore[no-untyped-def]
        _end(conn, "commit")

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn):  # type: ignore[no-untyped-def]
        _end(conn, "rollback")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class Database:
    """The engine and a session factory; ``with db.session() as s:`` commits or rolls back."""

    def __init__(self, url: str, pool_size: int = 10, cipher: DataCipher | None = None,
                 sqlite_synchronous: str = "FULL") -> None:
        """``cipher``: the hub's data cipher, for the sealed columns (store/sealed.py)."""
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size,
                                  sqlite_synchronous=sqlite_synchronous)
        if cipher is not None:
            bind_cipher(self.engine, cipher)
        self.postgres = is_postgres(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # Reads: SQLite's deferred BEGIN outside the writer queue (see _tune_sqlite),
        # PostgreSQL's READ ONLY transactions (the psycopg driver's read_only).
        reader = self.engine.execution_options(
            **({"postgresql_readonly": True} if self.postgres else {READ_ONLY: True}))
        self._read_factory = sessionmaker(reader, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as s, s.begin():
            yield s

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction that never waits for, nor blocks, a writer: for pages,
        statistics, exports and health checks. A write through it is refused."""
        with self._read_factory() as s, s.begin():
            yield s

    def migrate(self, cipher: object = None) -> None:
        """Bring the schema to the newest Alembic revision. ``cipher`` (the hub's
        DataCipher) seals existing personal data a revision moves into sealed columns."""
        from alembic import command

        cfg = alembic_config(self.url)
        cfg.attributes["cipher"] = cipher
        command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
