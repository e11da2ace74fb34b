"""Layered configuration: `conf/base.yaml`, then `conf/use_cases/<use case>.yaml`, then
`conf/<env>.yaml` (its shared keys, then its overrides for the use case under
`use_cases.<use case>`), then `--set` overrides.

The merged document is validated once, at start-up, into `nightjar.config.Config`. String
values may reference environment variables as `${NAME}` or `${NAME:-default}`, which keeps
secrets and per-machine addresses out of the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nightjar.config import ENV_NAME, Config
from nightjar.errors import ConfigError
from nightjar.strict import IDENTIFIER

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_USE_CASE = "churn"
USE_CASES_DIR = "use_cases"  # under the configuration folder: one file per use case
# The section of an environment file that holds its per-use-case overrides.
_PER_USE_CASE = "use_cases"
# Free-form mappings whose own keys contain dots: `--set spark.settings.spark.ui.enabled=false`
# sets the key `spark.ui.enabled` inside `spark.settings`.
_FREE_FORM_SECTIONS = ("spark.settings",)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: dates stay strings until pydantic validates them,
    so `2026-02-30` is reported against its key instead of crashing the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def conf_dir() -> Path:
    """The folder holding `base.yaml` and the environment files (`NIGHTJAR_CONF_DIR` overrides)."""
    return Path(os.environ.get("NIGHTJAR_CONF_DIR", PROJECT_ROOT / "conf")).resolve()


def default_env() -> str:
    """The environment used when `--env` is not given: `NIGHTJAR_ENV`, else `local`."""
    return os.environ.get("NIGHTJAR_ENV") or "local"


def default_use_case() -> str:
    """The use case run when `--use-case` is not given: `NIGHTJAR_USE_CASE`, else `churn`."""
    return os.environ.get("NIGHTJAR_USE_CASE") or DEFAULT_USE_CASE


def use_cases(directory: Path | None = None) -> list[str]:
    """The names of the use cases that exist: the files in `conf/use_cases/`."""
    folder = (directory or conf_dir()) / USE_CASES_DIR
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_config(
    env: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    directory: Path | None = None,
    use_case: str | None = None,
) -> Config:
    """Load, layer, interpolate and validate the configuration.

    Args:
        env: environment name (default `default_env()`); `conf/<env>.yaml` is layered over
            the use case's file.
        overrides: `dotted.key=value` strings; values are parsed as YAML scalars.
        directory: the configuration folder (defaults to `conf_dir()`).
        use_case: use case name (default `default_use_case()`); `conf/use_cases/<name>.yaml`
            is layered over `conf/base.yaml`, and names the configuration's `use_case.name`.

    Raises:
        ConfigError: an unknown use case or environment, a missing or malformed file, a bad
            override, an unset variable or an invalid value; the message names the file or
            key and the reason.
    """
    env = env or default_env()
    use_case = use_case or default_use_case()
    directory = directory or conf_dir()
    if not ENV_NAME.match(env) or ".." in env:
        raise ConfigError(f"--env {env!r}: must be letters, digits, '.', '-' or '_'")
    env_file = directory / f"{env}.yaml"
    if not env_file.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"--env {env!r}: no file {env_file} (environments: {', '.join(known)})")
    known_use_cases = use_cases(directory)
    use_case_file = directory / USE_CASES_DIR / f"{use_case}.yaml"
    # The name becomes a folder and part of a catalog database name, so it must be an identifier.
    if not re.match(IDENTIFIER, use_case) or not use_case_file.is_file():
        raise ConfigError(
            f"unknown use case {use_case!r}: no file {use_case_file} (use cases: {', '.join(known_use_cases)})"
        )
    environment = _read_yaml(env_file)
    per_use_case = _per_use_case(environment.pop(_PER_USE_CASE, None), env_file, known_use_cases)
    document = _read_yaml(directory / "base.yaml")
    for layer in (_read_yaml(use_case_file), environment, per_use_case.get(use_case, {})):
        document = _deep_merge(document, layer)
    for override in overrides:
        _apply_override(document, override)
    document = _interpolate(document, path="")
    document["env"] = env
    _name_use_case(document, use_case)
    try:
        config = Config.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    return _resolve_paths(config, directory.parent)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        content = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({reason})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys, not {type(content).__name__}")
    return content


def _per_use_case(section: Any, env_file: Path, known: list[str]) -> dict[str, dict[str, Any]]:
    """An environment file's `use_cases` section, checked: a mapping per existing use case.

    A misspelt use case here would otherwise be ignored without a word.
    """
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{env_file}: {_PER_USE_CASE} must map use case names to sections")
    for name, layer in section.items():
        if name not in known:
            raise ConfigError(f"{env_file}: {_PER_USE_CASE}.{name}: unknown use case (use cases: {', '.join(known)})")
        if not isinstance(layer, dict):
            raise ConfigError(f"{env_file}: {_PER_USE_CASE}.{name}: must hold a mapping of keys")
    return section


def _name_use_case(document: dict[str, Any], name: str) -> None:
    """Set `use_case.name` to the selected use case; a layer naming another is an error, not a switch."""
    section = document.get("use_case")
    if not isinstance(section, dict):
        return  # validation reports the missing or malformed section
    given = section.get("name", name)
    if given != name:
        raise ConfigError(
            f"use_case.name {given!r} differs from the use case's file {name}.yaml: "
            "a use case is named by its file; select one with --use-case"
        )
    section["name"] = name


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(document: dict[str, Any], override: str) -> None:
    key, separator, raw_value = override.partition("=")
    if not separator or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {override!r}: expected dotted.key=value")
    try:
        value = yaml.load(raw_value, Loader=_Loader) if raw_value else ""
    except yaml.YAMLError:
        value = raw_value
    node = document
    parts = key.split(".")
    for section in _FREE_FORM_SECTIONS:
        if key.startswith(section + "."):
            parts = [*section.split("."), key[len(section) + 1 :]]
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _interpolate(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: references ${{{name}}}, which is not set in the environment")

    return _VARIABLE.sub(substitute, value)


def _describe(error: ValidationError) -> str:
    """One line naming each invalid key and why, from pydantic's structured errors."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        reason = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key}: {reason}")
    return "invalid configuration: " + "; ".join(problems)


def _resolve_paths(config: Config, project_root: Path) -> Config:
    """Make local paths absolute against the project root, so a job behaves the same from any cwd."""

    def absolute(location: str) -> str:
        if "://" in location or location.startswith("file:"):
            return location
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else (project_root / path).resolve())

    lake = config.lake.model_copy(update={"root": absolute(config.lake.root)})
    validation = config.validation
    if validation.gx_root:
        validation = validation.model_copy(update={"gx_root": absolute(validation.gx_root)})
    return config.model_copy(update={"lake": lake, "validation": validation})
