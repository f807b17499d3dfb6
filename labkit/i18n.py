"""Translations: every text a person reads goes through ``_()``.

Messages are written in English in the code (the msgid) and translated to
Brazilian Portuguese by the catalog ``labkit/locale/pt_BR/LC_MESSAGES/labkit.mo``,
compiled from the ``.po`` fragments in ``labkit/locale/pt_BR/fragments/`` by
``tools/msgfmt.py``. Portuguese is the default; English is used when the
locale asks for it (``LABKIT_LANG``, ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``
or ``LANG`` starting with ``en``).
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import gettext

# gettext (and the re module it brings) is imported on the first translated message only:
# a successful `labkit run` shows none, and each import shows in its start-up time.
LOCALE_DIR = os.path.join(os.path.dirname(__file__), "locale")
DOMAIN = "labkit"
_translation: gettext.NullTranslations | None = None


def language() -> str:
    """Return ``"pt_BR"`` or ``"en"``, the language messages are shown in."""
    for var in ("LABKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if not value or value in ("C", "POSIX", "C.UTF-8", "C.utf8"):
            continue
        return "en" if value.lower().startswith("en") else "pt_BR"
    return "pt_BR"


_loaded: dict[str, gettext.NullTranslations] = {}


def _load() -> gettext.NullTranslations:
    global _translation
    if _translation is None:
        lang = language()
        if lang not in _loaded:
            import gettext

            if lang == "en":
                _loaded[lang] = gettext.NullTranslations()
            else:
                _loaded[lang] = gettext.translation(DOMAIN, LOCALE_DIR, languages=["pt_BR"], fallback=True)
        _translation = _loaded[lang]
    return _translation


def preload() -> None:
    """Load every catalog now, for a process that switches language after it
    can no longer read files (a container's PID 1 after pivot_root)."""
    global _translation
    current = _translation
    for lang in ("en", "pt_BR"):
        if lang not in _loaded:
            saved = os.environ.get("LABKIT_LANG")
            os.environ["LABKIT_LANG"] = lang
            _translation = None
            _load()
            if saved is None:
                del os.environ["LABKIT_LANG"]
            else:
                os.environ["LABKIT_LANG"] = saved
    _translation = current


def reset() -> None:
    """Forget which catalog is in use (after the language variables change)."""
    global _translation
    _translation = None


def _(message: str) -> str:
    """Translate ``message`` to the user's language."""
    return _load().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _load().ngettext(singular, plural, n)


def decimal(value: float, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals, with a decimal comma in Portuguese."""
    s = f"{value:.{digits}f}"
    return s.replace(".", ",") if language() == "pt_BR" else s
