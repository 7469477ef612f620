"""The one table from PetranodeError classes to JSON-RPC codes (SPEC §4.9)."""

import pytest

from petranode.errors import PetranodeError
from petranode.rpc.errors import ErrorCode, RpcError, default_error_table
from petranode.store.errors import ConstraintViolated, StorageError


class LedgerError(PetranodeError):
    pass


class TxInvalid(LedgerError):
    pass


class DoubleSpend(TxInvalid):
    pass


def test_lookup_walks_the_mro_to_the_nearest_registration() -> None:
    table = default_error_table()
    table.register(LedgerError, -32020)
    table.register(DoubleSpend, -32021)

    assert table.to_rpc_error(TxInvalid("bad")).code == -32020
    assert table.to_rpc_error(DoubleSpend("twice")).code == -32021
    assert table.to_rpc_error(PetranodeError("any")).code == ErrorCode.PETRANODE_ERROR
    assert table.to_rpc_error(ConstraintViolated("x")).code == ErrorCode.STORAGE_ERROR


def test_hidden_message_is_replaced_by_the_public_one() -> None:
    error = default_error_table().to_rpc_error(StorageError("no such column: wallet.seed"))

    assert error.message == "storage failure"
    assert error.data == {"error": "StorageError"}


def test_rpc_error_maps_to_itself() -> None:
    error = RpcError(-32042, "as raised", [1])

    assert default_error_table().to_rpc_error(error) is error


@pytest.mark.parametrize("code", [-32100, -31999, -32601, 0])
def test_registration_is_confined_to_the_application_range(code: int) -> None:
    with pytest.raises(ValueError):
        default_error_table().register(LedgerError, code)


def test_a_class_is_registered_once() -> None:
    table = default_error_table()
    table.register(LedgerError, -32020)

    with pytest.raises(ValueError):
        table.register(LedgerError, -32021)


def test_a_hidden_message_needs_a_public_one() -> None:
    with pytest.raises(ValueError):
        default_error_table().register(LedgerError, -32020, expose_message=False)
