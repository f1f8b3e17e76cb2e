// node-soap smoke client for the hub's fund service (tests/test_interop_clients.py).
// Usage: node fund_smoke.js WSDL_URL BANK USERNAME PASSWORD ACCOUNT HOUSE SERIAL
// Prints one JSON line: the answers of Authenticate and DepositNotice.
const soap = require("soap");

async function main() {
  const [wsdl, bank, username, password, account, house, serial] = process.argv.slice(2);
  const client = await soap.createClientAsync(wsdl, { disableCache: true });
  const [auth] = await client.AuthenticateAsync({ bank_code: bank, username, password });
  const result = auth.AuthenticateResult;
  // the AuthToken header as the WSDL declares it (no token field in the body)
  client.addSoapHeader({ AuthToken: result.token }, "AuthToken", "tns", "urn:cityhub:fund:v1");
  const [dep] = await client.DepositNoticeAsync({
    serial_no: serial, account_no: account, amount: "123.45",
    occurred_at: "2026-11-20T10:30:00+08:00", payer_name: "张三", pay_method: "01",
    house_code: house, buyer_name: "张三",
  });
  const endpoint = client.wsdl.services.FundService.ports.CityhubFund.location;
  console.log(JSON.stringify({
    authenticate: result.result_code, token: Boolean(result.token),
    deposit: dep.DepositNoticeResult.result_code, message: dep.DepositNoticeResult.result_msg,
    endpoint, header_sent: client.lastRequest.includes("AuthToken"),
    token_in_body: client.lastRequest.includes(":token>"),
  }));
}

main().catch((err) => { console.error(err && err.stack || String(err)); process.exit(1); });
