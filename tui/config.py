"""Settings: a small YAML file in the XDG config dir, and the theme files.

config.yaml lives in $SRCOCKPIT_CONFIG_DIR, else $XDG_CONFIG_HOME/srcockpit, else ~/.config/srcockpit
(tests point SRCOCKPIT_CONFIG_DIR at a tmp dir). A missing or broken file gives the defaults; the
cockpit never fails to open because of its settings.

Themes are YAML files (themes/*.yaml in the project, and <config dir>/themes/*.yaml for the user's
own), validated here and turned into Textual Theme objects; a bad file is reported and skipped.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from engine.files import shipped_folder

ENV_DIR = "SRCOCKPIT_CONFIG_DIR"
PROJECT_THEMES = shipped_folder("tui", "themes", "themes")
DEFAULT_THEME = "srcockpit-dark"
THEME_COLORS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                "background", "surface", "panel", "boost")
THEME_KEYS = {*THEME_COLORS, "name", "dark", "luminosity_spread", "text_alpha", "variables"}


def config_dir() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "srcockpit"


def config_path() -> Path:
    return config_dir() / "config.yaml"


@dataclass
class Config:
    theme: str = DEFAULT_THEME
    smoothing: float = 0.6  # TensorBoard-style EMA weight on the loss curves, 0 = raw
    refresh_s: float = 0.5  # how often the charts redraw at most
    problems: list[str] = field(default_factory=list, repr=False)  # not saved: what was wrong with the file


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    config = Config()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return config
    except (OSError, yaml.YAMLError) as error:
        config.problems.append(f"{path}: {error}")
        return config
    if not isinstance(data, dict):
        config.problems.append(f"{path}: expected a mapping")
        return config
    known = {f.name: f for f in fields(Config) if f.name != "problems"}
    for key, value in data.items():
        if key not in known:
            config.problems.append(f"{path}: unknown setting {key!r}")
            continue
        default = getattr(Config(), key)
        try:
            setattr(config, key, type(default)(value))
        except (TypeError, ValueError):
            config.problems.append(f"{path}: {key} should be a {type(default).__name__}")
    return config


def save_config(config: Config, path: Path | None = None) -> Path:
    path = path or config_path()
    data = {k: v for k, v in asdict(config).items() if k != "problems"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=True))
    tmp.replace(path)
    return path


class ThemeError(ValueError):
    pass


def theme_from_dict(data: Any, source: str = "theme"):
    """A validated Textual Theme; ThemeError says what is wrong."""
    from textual.color import Color, ColorParseError
    from textual.theme import Theme

    if not isinstance(data, dict):
        raise ThemeError(f"{source}: expected a mapping of theme fields")
    unknown = set(data) - THEME_KEYS
    if unknown:
        raise ThemeError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise ThemeError(f"{source}: 'name' is required")
    if "primary" not in data:
        raise ThemeError(f"{source}: 'primary' colour is required")
    for key in THEME_COLORS:
        if key in data:
            try:
                Color.parse(str(data[key]))
            except ColorParseError as error:
                raise ThemeError(f"{source}: {key}: {error}") from None
    if "dark" in data and not isinstance(data["dark"], bool):
        raise ThemeError(f"{source}: 'dark' must be true or false")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ThemeError(f"{source}: 'variables' must be a mapping")
    kwargs = {k: (str(v) if k in THEME_COLORS else v) for k, v in data.items() if k != "variables"}
    return Theme(**kwargs, variables={str(k): str(v) for k, v in variables.items()})


def load_themes(dirs: list[Path] | None = None) -> tuple[list, list[str]]:
    """(themes, problems) from every *.yaml in dirs (project themes, then the user's)."""
    dirs = dirs if dirs is not None else [PROJECT_THEMES, config_dir() / "themes"]
    themes, problems = [], []
    for folder in dirs:
        try:
            files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        except OSError:
            continue
        for file in files:
            try:
                themes.append(theme_from_dict(yaml.safe_load(file.read_text()), file.name))
            except (OSError, yaml.YAMLError, ThemeError) as error:
                problems.append(f"theme {file}: {error}".replace(f"{file.name}: ", "", 1))
    return themes, problems


def fallback_theme():
    """Used when no theme file loads (a broken or deleted file)."""
    return theme_from_dict(dict(
        name=DEFAULT_THEME, dark=True, primary="#4FA3E0", secondary="#7C6FE0", accent="#F0A35E",
        warning="#E5C07B", error="#E06C75", success="#98C379", foreground="#D8DEE9",
        background="#15181E", surface="#1C2028", panel="#252B36"), "built-in")
