<?php
// PHP SoapClient smoke client for the hub's fund service (tests/test_interop_clients.py).
// Usage: php fund_smoke.php WSDL_URL BANK USERNAME PASSWORD ACCOUNT HOUSE SERIAL
// Prints one JSON line: the answers of Authenticate and DepositNotice.
[$_, $wsdl, $bank, $username, $password, $account, $house, $serial] = $argv;
$client = new SoapClient($wsdl, ['trace' => 1, 'cache_wsdl' => WSDL_CACHE_NONE,
                                 'exceptions' => true]);
$auth = $client->Authenticate(['bank_code' => $bank, 'username' => $username,
                               'password' => $password])->AuthenticateResult;
// the AuthToken header as the WSDL declares it (no token field in the body)
$client->__setSoapHeaders([new SoapHeader('urn:cityhub:fund:v1', 'AuthToken', $auth->token)]);
$dep = $client->DepositNotice([
    'serial_no' => $serial, 'account_no' => $account, 'amount' => '123.45',
    'occurred_at' => '2026-11-20T10:30:00+08:00', 'payer_name' => '张三', 'pay_method' => '01',
    'house_code' => $house, 'buyer_name' => '张三',
])->DepositNoticeResult;
echo json_encode([
    'authenticate' => $auth->result_code, 'token' => $auth->token !== '',
    'deposit' => $dep->result_code, 'message' => $dep->result_msg,
    'header_sent' => str_contains($client->__getLastRequest(), 'AuthToken'),
    'token_in_body' => str_contains($client->__getLastRequest(), ':token>'),
], JSON_UNESCAPED_UNICODE), "\n";
