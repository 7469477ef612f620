"""Errors of the storage layer (SPEC §5: a killed node restarts with nothing final lost).

sqlite3/aiosqlite exceptions are translated into these once, in :mod:`petranode.store.store`,
with ``raise … from`` so the original stays in the traceback.
"""

from petranode.errors import PetranodeError


class StorageError(PetranodeError):
    """The database refused or failed an operation."""


class ConstraintViolated(StorageError):
    """A write broke a UNIQUE, FOREIGN KEY, CHECK or NOT NULL constraint."""


class StoreClosed(StorageError):
    """The store was used outside its ``async with`` block."""


class MigrationsInvalid(StorageError):
    """The code's migrations for a component have a gap or a duplicate version."""


class MigrationFailed(StorageError):
    """A migration's SQL failed; its transaction was rolled back and the version kept."""

    def __init__(self, component: str, version: int) -> None:
        super().__init__(f"migration {component} v{version} failed")
        self.component = component
        self.version = version


class SchemaTooNew(StorageError):
    """The database was written by a newer petranode than this one."""

    def __init__(self, component: str, found: int, known: int) -> None:
        super().__init__(
            f"schema of {component} is at version {found}, this petranode knows up to {known}"
        )
        self.component = component
        self.found = found
        self.known = known
