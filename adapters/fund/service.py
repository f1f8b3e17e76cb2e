"""The hub's SOAP service for banks and POS terminals (contracts/bank.md 3.1, 3.3).

Typed fields (Decimal amounts, ISO dates); every operation answers ``result_code`` and
``result_msg``. spyne declares the service (its WSDL, XML Schema and types); the calls
themselves are dispatched by ``adapters.fund.soap`` to the ``FundDesk``
(``adapters.fund.desk``) once it has parsed and validated the XML, with the arguments
converted here by spyne's own SOAP conversions (``read_arguments``). spyne's request
pipeline (a context, events, deserialising into a ComplexModel, serialising the answer)
cost more CPU per call than all the checks the hub adds.
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


class FundService(ServiceBase):
    """Operations of section 3.3 (names from the contract): their signatures only.

    spyne builds the WSDL and the XML Schema from them; a call is dispatched by
    ``adapters.fund.soap`` (arguments read by ``read_arguments`` with spyne's own
    conversions, answered by ``adapters.fund.soap.answer_response``), never by spyne."""

    @rpc(Key, Key, Unicode(min_occurs=1, nillable=False, max_len=128), _returns=AuthResult)
    def Authenticate(ctx, bank_code, username, password):  # noqa: N802, N805
        raise NotDispatched

    @rpc(Token, Key, Key, Amount, When, Text, Text, Code, Unicode(max_len=64), Text, Text,
         _returns=Result)
    def DepositNotice(ctx, token, serial_no, account_no, amount, occurred_at,  # noqa: N802, N805
                      payer_name, payer_account, pay_method, house_code, buyer_name, remark):
        raise NotDispatched

    @rpc(Token, Key, Key, Amount, When, Text, Text, Unicode(max_len=64), Text, _returns=Result)
    def WithdrawalNotice(ctx, token, serial_no, account_no, amount, occurred_at,  # noqa: N802, N805
                         payee_name, payee_account, instruction_no, remark):
        raise NotDispatched

    @rpc(Token, Key, Key, Key, Day, Amount, Amount, Amount, Amount, _returns=Result)
    def ReconciliationResult(ctx, token, serial_no, instruction_no, account_no, date,  # noqa: N802, N805
                             opening_balance, total_in, total_out, closing_balance):
        raise NotDispatched

    @rpc(Token, Key, Key, Key, Code, Text, _returns=Result)
    def CancelSupervisionResult(ctx, token, serial_no, instruction_no, account_no,  # noqa: N802, N805
                                result, message):
        raise NotDispatched

    @rpc(Token, Key, Key, Key, Amount, Code, Text, When, _returns=Result)
    def TransferResult(ctx, token, serial_no, instruction_no, account_no, amount,  # noqa: N802, N805
                       result, message, occurred_at):
        raise NotDispatched

    @rpc(Token, Key, Key, Unicode(max_len=64), Text, Text, Code, Text, _returns=Result)
    def AccountSetupResult(ctx, token, serial_no, instruction_no, account_no,  # noqa: N802, N805
                           account_name, branch_name, result, message):
        raise NotDispatched

    @rpc(Token, Key, Key, Text, Amount, _returns=VerifyResult)
    def PosPaymentVerify(ctx, token, terminal_id, house_code, buyer_name, amount):  # noqa: N802, N805
        raise NotDispatched

    @rpc(Token, Key, Key, Key, Text, Amount, Unicode(max_len=32), When, _returns=Result)
    def PosPayment(ctx, token, serial_no, terminal_id, house_code, buyer_name,  # noqa: N802, N805
                   amount, card_no_masked, occurred_at):
        raise NotDispatched

    @rpc(Token, Key, Key, Amount, Text, Unicode(max_len=64), When, _returns=Result)
    def AccountFrozenNotice(ctx, token, serial_no, account_no, amount, authority,  # noqa: N802, N805
                            document_no, occurred_at):
        raise NotDispatched

    @rpc(Token, Key, Key, Amount, Text, Unicode(max_len=64), When, _returns=Result)
    def AccountUnfrozenNotice(ctx, token, serial_no, account_no, amount, authority,  # noqa: N802, N805
                              document_no, occurred_at):
        raise NotDispatched

    @rpc(Token, Key, Key, Amount, Text, Unicode(max_len=64), When, _returns=Result)
    def JudicialDeductionNotice(ctx, token, serial_no, account_no, amount, authority,  # noqa: N802, N805
                                document_no, occurred_at):
        raise NotDispatched


def no_token() -> dict[str, Any]:
    """What a failed Authenticate answers in its required fields: no token, expired now."""
    return {"token": "", "expires_at": datetime.now(UTC).replace(microsecond=0)}


OPERATIONS: tuple[str, ...] = (
    "Authenticate", "DepositNotice", "WithdrawalNotice", "ReconciliationResult",
    "CancelSupervisionResult", "TransferResult", "AccountSetupResult", "PosPaymentVerify",
    "PosPayment", "AccountFrozenNotice", "AccountUnfrozenNotice", "JudicialDeductionNotice",
)


def build_application() -> Application:
    """The service's spyne application: its WSDL and XML Schema (no spyne dispatch)."""
    return Application([FundService], tns=NS, name="CityhubFund", in_protocol=Soap11(),
                       out_protocol=Soap11())


class NotDispatched(RuntimeError):
    """spyne was asked to run an operation: only ``adapters.fund.soap`` dispatches."""


_PROTOCOL = Soap11()  # spyne's own text-to-value conversions (``from_unicode``)
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
#: operation → {argument: its spyne type}, in declaration order.
ARGUMENTS: dict[str, dict[str, Any]] = {
    op: dict(method.in_message._type_info) for op, method in FundService.public_methods.items()}
#: operation → the fields of its answer, in declaration order.
ANSWERS: dict[str, tuple[str, ...]] = {
    op: tuple(next(iter(method.out_message._type_info.values()))._type_info)
    for op, method in FundService.public_methods.items()}


def read_arguments(operation: str, element: Any) -> dict[str, Any]:
    """The arguments of a schema-valid operation element, each converted by spyne's own
    SOAP conversion of its declared type; a missing or ``xsi:nil`` field is None (as
    spyne's deserializer gives). Raises spyne's ``ValidationError`` on a value its type
    refuses."""
    types = ARGUMENTS[operation]
    values: dict[str, Any] = dict.fromkeys(types)
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = child.tag.rpartition("}")[2]
        cls = types.get(name)
        if cls is None:
            continue
        nil = (child.get(_XSI_NIL) or "").strip() in ("true", "1")
        values[name] = None if nil else _PROTOCOL.from_unicode(cls, child.text or "")
    return values
