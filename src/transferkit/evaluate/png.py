"""A matplotlib figure as a PNG data URI, for the HTML report's plots (one helper shared by the report and
the plot modules it calls, so that those do not import the report back)."""

from __future__ import annotations

import base64
import io


def png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
