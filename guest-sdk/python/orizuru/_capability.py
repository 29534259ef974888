"""Finding a capability's generated bindings, or saying why they are absent."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

from ._errors import Failed

try:
    from componentize_py_types import Err
except ImportError:  # plain CPython: no component, no WIT errors

    class Err(Exception):  # type: ignore[no-redef]
        """Stands in for componentize-py's ``Err`` outside a component."""

        value: object


def bindings(module: str, wrapper: str, flag: str, grant: str) -> Optional[ModuleType]:
    """The generated module ``orizuru_wit.imports.<module>``.

    ``None`` outside a component (plain CPython, for unit tests). Inside a
    component built without the capability the import fails, and so does the
    build, with a sentence saying which ``--with`` to add.
    """
    try:
        importlib.import_module("orizuru_wit")
    except ImportError:
        return None
    try:
        return importlib.import_module(f"orizuru_wit.imports.{module}")
    except ImportError:
        raise ImportError(
            f"the plugin uses orizuru.{wrapper}, but it is being built without that capability; "
            f"build it with `orizuru-build PLUGIN_DIR OUT.wasm --with {flag}` "
            f"(and the operator grants it with {grant})"
        ) from None


def outside(wrapper: str) -> Failed:
    return Failed(
        f"orizuru.{wrapper} works only inside a plugin built by orizuru-build and served by Orizuru"
    )
