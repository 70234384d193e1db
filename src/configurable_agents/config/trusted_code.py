"""Import paths in config files (``redaction.custom: "pkg.module:function"``) run code.

A config file is often shared (a workflow YAML in a repo, a ticket, a chat); an import
path in it would run whatever it names on every prompt, end-user input included
(``"os:system"`` runs each prompt as a shell command). So an import path is honoured
only when the process opts in, outside the file, and never for targets that can run
commands or touch files whatever the opt-in says:

- opt-in: the environment variable :data:`ALLOW_ENV` lists the module prefixes the
  operator trusts (``CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE=my_company.pii``); a path
  outside them is refused with one line saying so;
- never: the standard library (``os``, ``subprocess``, ``shutil``, ``builtins``, ...),
  the listed third-party runners, our own package, private names (``_x``), and
  anything that is not a plain Python function (builtins, classes, partials).

Custom detectors as regexes (``redaction.extra_patterns``) need no code and no opt-in;
a callable passed in code (``Redactor(custom=fn)``) needs none either.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

ALLOW_ENV = "CONFIGURABLE_AGENTS_ALLOW_CONFIG_CODE"
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
# Third-party packages whose functions run commands, load code or touch files.
_NEVER = frozenset({
    "builtins", "configurable_agents", "sh", "plumbum", "pexpect", "invoke", "fabric",
    "paramiko", "dill", "cloudpickle", "joblib", "pip", "setuptools", "pkg_resources",
    "IPython", "pytest", "_pytest", "nt", "posix",
})


class UntrustedCodeError(ValueError):
    """An import path from a config file that is not allowed to run."""


def _allowed_prefixes(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get(ALLOW_ENV, "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _forbidden_module(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in _NEVER or top in sys.stdlib_module_names or top.startswith("_")


def check_import_path(path: str, environ: Mapping[str, str] | None = None) -> str:
    """``path`` stripped, or :class:`UntrustedCodeError` saying why it may not run."""
    path = path.strip()
    if not _IMPORT_PATH.fullmatch(path):
        raise UntrustedCodeError(f"custom {path!r} must be an import path like "
                                 "'my_package.pii:redact'")
    module, _, attr = path.partition(":")
    parts = [*module.split("."), *attr.split(".")]
    if any(p.startswith("_") for p in parts):
        raise UntrustedCodeError(f"custom {path!r}: private names ('_...') are never loaded "
                                 "from a config file")
    if _forbidden_module(module):
        raise UntrustedCodeError(
            f"custom {path!r}: {module.split('.', 1)[0]!r} is never loaded from a config file "
            "(standard library and code runners are refused); use redaction.extra_patterns "
            "for regex detectors, or pass Redactor(custom=fn) in code")
    prefixes = _allowed_prefixes(os.environ if environ is None else environ)
    if not any(_within(module, p) for p in prefixes):
        raise UntrustedCodeError(
            f"custom {path!r}: loading code named in a config file needs an explicit opt-in: "
            f"set {ALLOW_ENV}={module} (comma-separated module prefixes you trust); regex "
            "detectors (redaction.extra_patterns) need none")
    return path


def load_callable(path: str, environ: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """Import the function ``path`` names, after :func:`check_import_path`."""
    path = check_import_path(path, environ)
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise UntrustedCodeError(f"custom {path!r} cannot be imported: {exc}") from None
    # A re-export (``my_pkg.run = os.system``) is caught here: only a plain Python
    # function defined outside the refused modules is accepted.
    if not inspect.isfunction(target) or _forbidden_module(getattr(target, "__module__", "")):
        raise UntrustedCodeError(f"custom {path!r} is not a plain Python function of an "
                                 "allowed module")
    return target
