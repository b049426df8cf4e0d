"""JaxMARL's environment modules, imported without running its package initialisers.

``import jaxmarl.environments.smax`` first runs ``jaxmarl/__init__.py``, whose registry imports
every JaxMARL environment (Hanabi, STORM, JaxNav, the MPEs, ...), then
``jaxmarl/environments/__init__.py``, which also prints two lines and (through its MABrax import)
rebinds ``sys.stdout``/``sys.stderr``. On 2 CPU cores that costs about 3 s of every process that
builds an environment, training job or test, for modules we never use (jaxmarl 0.2.0).

:func:`jaxmarl_module` registers the two parent packages without running them (a module object
with their ``__path__``, so that their submodules import as usual) and imports just the module
asked for. The packages stay whole for code that wants more: asking either parent for a name
that is not yet there imports it as a submodule if it is one, and otherwise runs that package's
initialiser then, once, its prints swallowed (``from jaxmarl import make`` works as before).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import sys
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec
from types import ModuleType

PARENTS = ("jaxmarl", "jaxmarl.environments")


def jaxmarl_module(name: str) -> ModuleType:
    """Import ``name`` (e.g. ``jaxmarl.environments.smax.smax_env``) without the parents'
    initialisers, unless something imported them already."""
    for package in PARENTS:
        if package not in sys.modules:
            spec = importlib.util.find_spec(package)
            module = importlib.util.module_from_spec(spec)
            module.__getattr__ = _initialise_on_demand(module, spec)
            sys.modules[package] = module
    return importlib.import_module(name)


def _initialise_on_demand(package: ModuleType, spec: ModuleSpec) -> Callable[[str], object]:
    """The package's module ``__getattr__`` (PEP 562) while its initialiser has not run: a
    submodule is imported alone; any other name runs the initialiser first."""

    def missing(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{package.__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package.__name__}.{name}":
                raise
        del package.__getattr__
        with _quiet_streams():
            spec.loader.exec_module(package)
        return getattr(package, name)

    return missing


@contextlib.contextmanager
def _quiet_streams() -> Iterator[None]:
    """Swallow the initialisers' prints and undo their stream rebinding: MABrax's import points
    ``sys.stdout``/``sys.stderr`` at ``sys.__stdout__``/``sys.__stderr__``, which would escape
    ``contextlib.redirect_stdout`` and clobber a caller's redirection. Pointing the dunder streams
    at a sink for the duration, then restoring all four, contains both."""
    saved = sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__
    sys.stdout = sys.__stdout__ = io.StringIO()
    sys.__stderr__ = sys.stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved
