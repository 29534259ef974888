"""``orizuru-build``: a plugin written in Python, built into a wasm component.

    orizuru-build PLUGIN_DIR OUT.wasm [--with CAPS] [--module NAME]

PLUGIN_DIR holds the plugin's module (plugin.py, or the package plugin/;
--module names another) and, optionally, a requirements.txt of pure-Python
packages. --with lists the capabilities the plugin uses, comma-separated:
logging, config, keyvalue, sql. The component imports exactly those (an
interpreted guest imports every interface of the world it is built for), so
the service's operator must grant each one, and no other is needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

COMPONENTIZE_PY = "componentize-py"
# The CPython inside the component, for which requirements.txt is installed.
GUEST_PYTHON = "3.14"

CAPABILITIES = {
    "logging": ["wasi:logging/logging@0.1.0-draft"],
    "config": ["wasi:config/store@0.2.0-rc.1"],
    "keyvalue": ["wasi:keyvalue/store@0.2.0-draft", "wasi:keyvalue/atomics@0.2.0-draft"],
    "sql": ["orizuru:service/sql@0.1.0"],
}
# Names the SDK, the build or componentize-py give modules of their own.
RESERVED = {"orizuru", "orizuru_wit", "orizuru_main", "componentize_py_types", "componentize_py_runtime", "poll_loop"}

PACKAGE = Path(__file__).resolve().parent


class BuildError(Exception):
    """Why the build stopped, in a sentence that says what to do."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="orizuru-build",
        description="Builds an Orizuru plugin written in Python into a wasm component.",
    )
    parser.add_argument("plugin_dir", metavar="PLUGIN_DIR", type=Path, help="the directory of plugin.py")
    parser.add_argument("out", metavar="OUT.wasm", type=Path, help="the component to write")
    parser.add_argument(
        "--with",
        dest="capabilities",
        default="",
        metavar="CAPS",
        help="the capabilities the plugin uses, comma-separated: " + ", ".join(CAPABILITIES),
    )
    parser.add_argument("--module", default="plugin", help="the plugin's module (default: plugin)")
    parser.add_argument("--version", action="version", version=_version())
    args = parser.parse_args(argv)
    try:
        size = build(args.plugin_dir, args.out, capabilities(args.capabilities), args.module)
    except BuildError as err:
        print(f"orizuru-build: {err}", file=sys.stderr)
        return 1
    print(
        f"orizuru-build: wrote {args.out} ({size // 1024} KiB; capabilities: {args.capabilities or 'none'})",
        file=sys.stderr,
    )
    return 0


def _version() -> str:
    try:
        sdk = metadata.version("orizuru-sdk")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        sdk = "(not installed)"
    try:
        tool = metadata.version(COMPONENTIZE_PY)
    except metadata.PackageNotFoundError:
        tool = "missing"
    return f"orizuru-build {sdk} (componentize-py {tool})"


def capabilities(text: str) -> list[str]:
    """The ``--with`` list, checked."""
    chosen = []
    for name in (item.strip() for item in text.split(",")):
        if not name:
            continue
        if name == "http":
            raise BuildError(
                "the Python SDK does not offer outbound HTTP (wasi:http); write the plugin in Rust to call HTTP APIs"
            )
        if name not in CAPABILITIES:
            raise BuildError(f"--with {name} is not a capability; give some of {', '.join(CAPABILITIES)}")
        chosen.append(name)
    return chosen


def build(plugin_dir: Path, out: Path, chosen: list[str], module: str) -> int:
    """Builds the component; answers its size in bytes."""
    if not plugin_dir.is_dir():
        raise BuildError(f"the plugin directory {plugin_dir} does not exist")
    plugin_dir = plugin_dir.resolve()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", module):
        raise BuildError(f"--module {module} is not a Python module name")
    if module in RESERVED:
        raise BuildError(
            f"the plugin's module may not be named {module}, a name the SDK or componentize-py uses; rename it"
        )
    if not (plugin_dir / f"{module}.py").is_file() and not (plugin_dir / module / "__init__.py").is_file():
        raise BuildError(
            f"{plugin_dir} has no {module}.py (nor a package {module}/); write the plugin there, "
            "or name its module with --module"
        )
    if not out.parent.resolve().is_dir():
        raise BuildError(f"the output's directory {out.parent} does not exist")
    # pip puts the scripts of the SDK and of its componentize-py in one place.
    beside = os.pathsep.join([str(Path(sys.argv[0]).parent), sysconfig.get_path("scripts")])
    tool = shutil.which(COMPONENTIZE_PY, path=beside)
    if tool is None:
        raise BuildError(
            f"componentize-py is not installed beside orizuru-build ({beside}); "
            "reinstall the SDK with `pip install orizuru-sdk`, which brings it"
        )

    with tempfile.TemporaryDirectory(prefix="orizuru-build-") as scratch:
        work = Path(scratch)
        _write_world(work / "wit", chosen)
        app = work / "app"
        app.mkdir()
        # The module componentize-py exports: the author's service, through the SDK.
        (app / "orizuru_main.py").write_text(
            "import orizuru._export\n"
            f"import {module}  # noqa: F401  (the author's module: it calls orizuru.export)\n\n"
            "OrizuruServiceHandler010 = orizuru._export.handler()\n"
        )
        # Only the SDK's runtime goes into the component, not this tool or the WIT.
        shutil.copytree(
            PACKAGE, work / "sdk" / "orizuru", ignore=shutil.ignore_patterns("wit", "_build.py", "__pycache__")
        )
        python_path = [app, plugin_dir, work / "sdk"]
        requirements = plugin_dir / "requirements.txt"
        if requirements.is_file():
            python_path.append(_install_requirements(requirements, work / "deps"))

        command = [tool, "-q", "-d", str(work / "wit"), "-w", "python-plugin", "--full-names"]
        command += ["--world-module", "orizuru_wit", "componentize"]
        for path in python_path:
            command += ["-p", str(path)]
        command += ["orizuru_main", "-o", str(work / "plugin.wasm")]
        # A clean environment: no virtualenv of the caller's leaks into the component.
        env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(PIPENV_IGNORE_VIRTUALENVS="1", RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
        if subprocess.run(command, cwd=work, env=env).returncode != 0:
            raise BuildError(
                f"componentize-py could not build {plugin_dir} (its message is above; an exception raised "
                f"while importing {module}.py, or a capability used without its --with, stops the build)"
            )
        shutil.move(work / "plugin.wasm", out)
    return out.stat().st_size


def _write_world(wit: Path, chosen: list[str]) -> None:
    """The contract's packages under deps/, and a world of the handler plus
    exactly the capabilities chosen."""
    source = PACKAGE / "wit"
    if not (source / "service.wit").is_file():
        raise BuildError(
            f"the SDK's WIT files are missing from {source}; reinstall orizuru-sdk "
            "(from a checkout, `pip install -e guest-sdk/python`)"
        )
    (wit / "deps" / "orizuru-service").mkdir(parents=True)
    shutil.copy(source / "service.wit", wit / "deps" / "orizuru-service")
    for dep in (source / "deps").iterdir():
        if dep.is_dir():
            shutil.copytree(dep, wit / "deps" / dep.name)
    imports = "".join(f"    import {interface};\n" for name in chosen for interface in CAPABILITIES[name])
    (wit / "world.wit").write_text(
        "package orizuru:python-build;\n"
        "world python-plugin {\n"
        "    include orizuru:service/plugin@0.1.0;\n"
        f"{imports}"
        "}\n"
    )


def _install_requirements(requirements: Path, target: Path) -> Path:
    """requirements.txt installed for the guest: componentize-py runs pure
    Python only, so pip is asked for wheels that are."""
    if importlib.util.find_spec("pip") is None:
        raise BuildError(f"the plugin has a requirements.txt, but pip is not installed beside {sys.executable}")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--target", str(target), "--only-binary=:all:", "--implementation", "py", "--abi", "none"]
    command += ["--platform", "any", "--python-version", GUEST_PYTHON, "-r", str(requirements)]
    if subprocess.run(command).returncode != 0:
        raise BuildError(
            f"pip could not install {requirements} as pure-Python wheels; the plugin runs on the CPython "
            "inside the component, which loads no native extensions, so use packages written in Python only"
        )
    return target


if __name__ == "__main__":
    sys.exit(main())
