"""Two help-text conventions Typer 0.29's defaults break, restored for every command.

Typer shows ``<bool>`` as the value of a flag (``--json <bool>``, as if ``--json true`` worked: it
does not) and wraps required arguments in braces in the usage line (``{DATA}``). Flags show no
value here, and arguments read as their metavar (``DATA``, ``MODEL``, ``FEATURES``), the way click,
argparse and man pages write them. Both patches check the attribute first, so another Typer version
simply keeps its own rendering.
"""

from __future__ import annotations

from typer import core as _core

_option = getattr(_core, "TyperOption", None)
if _option is not None and hasattr(_option, "display_type_rich"):
    _display_type_rich = _option.display_type_rich

    def _flag_shows_no_type(self, ctx):
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return _display_type_rich(self, ctx)

    _option.display_type_rich = _flag_shows_no_type

_argument = getattr(_core, "TyperArgument", None)
if _argument is not None and hasattr(_argument, "_usage_display_name"):
    _usage_display_name = _argument._usage_display_name

    def _plain_usage_name(self):
        name = _usage_display_name(self)
        if self.required and name.startswith("{"):
            name = name[1:].replace("}", "", 1)
        return name

    _argument._usage_display_name = _plain_usage_name
