"""The hub's SOAP service for banks and POS terminals (contracts/bank.md 3.1, 3.3).

Typed fields (Decimal amounts, ISO dates); every operation answers ``result_code`` and
``result_msg``. The operations only unpack their arguments and hand them to the
``FundDesk`` of the request (``adapters.fund.desk``); raw XML never reaches spyne
unchecked (``adapters.fund.soap`` parses and validates it first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spyne import Application, ComplexModel, ServiceBase, const, rpc
from spyne.model.primitive import Date, DateTime, Unicode
from spyne.model.primitive import Decimal as SoapDecimal
from spyne.protocol.soap import Soap11

NS = "urn:cityhub:fund:v1"

# spyne runs a full gc.collect() after a call at most once per MIN_GC_INTERVAL seconds
# "to return file descriptors"; with SQLAlchemy and zeep loaded that stops every request
# thread for ~0.2 s each second. The hub closes what it opens; let the collector be.
const.MIN_GC_INTERVAL = float("inf")

Token = Unicode(max_len=256)
Key = Unicode(min_occurs=1, nillable=False, min_len=1, max_len=64)
Text = Unicode(max_len=200)
Code = Unicode(max_len=32)
Amount = SoapDecimal(18, 2, min_occurs=1, nillable=False)
When = DateTime(min_occurs=1, nillable=False)
Day = Date(min_occurs=1, nillable=False)


#: Always answered, so declared required and not nillable (a Java client gets String,
#: not JAXBElement<String>); an Authenticate that fails answers an empty token.
Answered = Unicode(min_occurs=1, nillable=False)
AnsweredAt = DateTime(min_occurs=1, nillable=False)


class Result(ComplexModel):
    __namespace__ = NS
    _type_info = [("result_code", Answered), ("result_msg", Answered)]


class AuthResult(ComplexModel):
    __namespace__ = NS
    _type_info = [("result_code", Answered), ("result_msg", Answered),
                  ("token", Answered), ("expires_at", AnsweredAt)]


class VerifyResult(ComplexModel):
    __namespace__ = NS
    _type_info = [("result_code", Answered), ("result_msg", Answered),
                  ("account_no", Unicode), ("project_name", Unicode)]


def _desk(ctx: Any) -> Any:
    return ctx.transport.req_env["cityhub.desk"]


def _run(ctx: Any, operation: str, fields: dict[str, Any]) -> Any:
    env = ctx.transport.req_env
    call = env["cityhub.call"]
    answer = _desk(ctx).handle(call, operation, fields)
    call.code, call.msg = answer.code, answer.msg
    cls = VerifyResult if operation == "PosPaymentVerify" else Result
    return cls(result_code=answer.code, result_msg=answer.msg, **answer.extra)


class FundService(ServiceBase):
    """Operations of section 3.3 (names from the contract)."""

    @rpc(Key, Key, Unicode(min_occurs=1, nillable=False, max_len=128), _returns=AuthResult)
    def Authenticate(ctx, bank_code, username, password):  # noqa: N802, N805
        env = ctx.transport.req_env
        call = env["cityhub.call"]
        answer = _desk(ctx).authenticate(call, bank_code, username, password)
        call.code, call.msg = answer.code, answer.msg
        return AuthResult(result_code=answer.code, result_msg=answer.msg,
                          **{**no_token(), **answer.extra})

    @rpc(Token, Key, Key, Amount, When, Text, Text, Code, Unicode(max_len=64), Text, Text,
         _returns=Result)
    def DepositNotice(ctx, token, serial_no, account_no, amount, occurred_at,  # noqa: N802, N805
                      payer_name, payer_account, pay_method, house_code, buyer_name, remark):
        return _run(ctx, "DepositNotice", locals_of(
            token, serial_no, account_no, amount, occurred_at, payer_name, payer_account,
            pay_method, house_code, buyer_name, remark,
            names="token serial_no account_no amount occurred_at payer_name payer_account "
                  "pay_method house_code buyer_name remark"))

    @rpc(Token, Key, Key, Amount, When, Text, Text, Unicode(max_len=64), Text, _returns=Result)
    def WithdrawalNotice(ctx, token, serial_no, account_no, amount, occurred_at,  # noqa: N802, N805
                         payee_name, payee_account, instruction_no, remark):
        return _run(ctx, "WithdrawalNotice", locals_of(
            token, serial_no, account_no, amount, occurred_at, payee_name, payee_account,
            instruction_no, remark,
            names="token serial_no account_no amount occurred_at payee_name payee_account "
                  "instruction_no remark"))

    @rpc(Token, Key, Key, Key, Day, Amount, Amount, Amount, Amount, _returns=Result)
    def ReconciliationResult(ctx, token, serial_no, instruction_no, account_no, date,  # noqa: N802, N805
                             opening_balance, total_in, total_out, closing_balance):
        return _run(ctx, "ReconciliationResult", locals_of(
            token, serial_no, instruction_no, account_no, date, opening_balance, total_in,
            total_out, closing_balance,
            names="token serial_no instruction_no account_no date opening_balance total_in "
                  "total_out closing_balance"))

    @rpc(Token, Key, Key, Key, Code, Text, _returns=Result)
    def CancelSupervisionResult(ctx, token, serial_no, instruction_no, account_no,  # noqa: N802, N805
                                result, message):
        return _run(ctx, "CancelSupervisionResult", locals_of(
            token, serial_no, instruction_no, account_no, result, message,
            names="token serial_no instruction_no account_no result message"))

    @rpc(Token, Key, Key, Key, Amount, Code, Text, When, _returns=Result)
    def TransferResult(ctx, token, serial_no, instruction_no, account_no, amount,  # noqa: N802, N805
                       result, message, occurred_at):
        return _run(ctx, "TransferResult", locals_of(
            token, serial_no, instruction_no, account_no, amount, result, message, occurred_at,
            names="token serial_no instruction_no account_no amount result message "
                  "occurred_at"))

    @rpc(Token, Key, Key, Unicode(max_len=64), Text, Text, Code, Text, _returns=Result)
    def AccountSetupResult(ctx, token, serial_no, instruction_no, account_no,  # noqa: N802, N805
                           account_name, branch_name, result, message):
        return _run(ctx, "AccountSetupResult", locals_of(
            token, serial_no, instruction_no, account_no, account_name, branch_name, result,
            message,
            names="token serial_no instruction_no account_no account_name branch_name result "
                  "message"))

    @rpc(Token, Key, Key, Text, Amount, _returns=VerifyResult)
    def PosPaymentVerify(ctx, token, terminal_id, house_code, buyer_name, amount):  # noqa: N802, N805
        return _run(ctx, "PosPaymentVerify", locals_of(
            token, terminal_id, house_code, buyer_name, amount,
            names="token terminal_id house_code buyer_name amount"))

    @rpc(Token, Key, Key, Key, Text, Amount, Unicode(max_len=32), When, _returns=Result)
    def PosPayment(ctx, token, serial_no, terminal_id, house_code, buyer_name,  # noqa: N802, N805
                   amount, card_no_masked, occurred_at):
        return _run(ctx, "PosPayment", locals_of(
            token, serial_no, terminal_id, house_code, buyer_name, amount, card_no_masked,
            occurred_at,
            names="token serial_no terminal_id house_code buyer_name amount card_no_masked "
                  "occurred_at"))

    @rpc(Token, Key, Key, Amount, Text, Unicode(max_len=64), When, _returns=Result)
    def AccountFrozenNotice(ctx, token, serial_no, account_no, amount, authority,  # noqa: N802, N805
                            document_no, occurred_at):
        return _run(ctx, "AccountFrozenNotice", _abnormal(
            token, serial_no, account_no, amount, authority, document_no, occurred_at))

    @rpc(Token, Key, Key, Amount, Text, Unicode(max_len=64), When, _returns=Result)
    def AccountUnfrozenNotice(ctx, token, serial_no, account_no, amount, authority,  # noqa: N802, N805
                              document_no, occurred_at):
        return _run(ctx, "AccountUnfrozenNotice", _abnormal(
            token, serial_no, account_no, amount, authority, document_no, occurred_at))

    @rpc(Token, Key, Key, Amount, Text, Unicode(max_len=64), When, _returns=Result)
    def JudicialDeductionNotice(ctx, token, serial_no, account_no, amount, authority,  # noqa: N802, N805
                                document_no, occurred_at):
        return _run(ctx, "JudicialDeductionNotice", _abnormal(
            token, serial_no, account_no, amount, authority, document_no, occurred_at))


def no_token() -> dict[str, Any]:
    """What a failed Authenticate answers in its required fields: no token, expired now."""
    return {"token": "", "expires_at": datetime.now(UTC).replace(microsecond=0)}


def locals_of(*values: Any, names: str) -> dict[str, Any]:
    keys = names.split()
    assert len(keys) == len(values)
    return dict(zip(keys, values, strict=True))


def _abnormal(*values: Any) -> dict[str, Any]:
    return locals_of(*values, names="token serial_no account_no amount authority document_no "
                                    "occurred_at")


OPERATIONS: tuple[str, ...] = (
    "Authenticate", "DepositNotice", "WithdrawalNotice", "ReconciliationResult",
    "CancelSupervisionResult", "TransferResult", "AccountSetupResult", "PosPaymentVerify",
    "PosPayment", "AccountFrozenNotice", "AccountUnfrozenNotice", "JudicialDeductionNotice",
)


class PreparsedSoap11(Soap11):
    """SOAP 1.1 that takes the document the hardened pre-check parsed, never raw bytes."""

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        ctx.in_document = ctx.transport.req_env["cityhub.soap_doc"]


def build_application() -> Application:
    return Application([FundService], tns=NS, name="CityhubFund",
                       in_protocol=PreparsedSoap11(validator=None), out_protocol=Soap11())
