"""How near each Grad-CAM map lies to its class's call, in words (no torch: the console, Slicer and the web viewer
read it from ``summary.json["gradcam_locality"]``, which ``explanation_checks.map_locality`` measures)."""

from __future__ import annotations

#: The margin around a predicted region within which a map still points at it (it may light the region's rim).
MARGIN_MM = 5.0
#: A map with less of its mass than this within ``MARGIN_MM`` of its class's call is flagged as lying away from it
#: (the target the Grad-CAM method was chosen against, docs/model_card.md).
LOCALITY_FLOOR = 0.6
#: The results table's column (Slicer, web viewer).
LOCALITY_COLUMN = f"Grad-CAM within {MARGIN_MM:g} mm [%]"


def locality_share(entry: dict | None) -> float | None:
    return (entry or {}).get("in_region_margin")


def away_from_call(locality: dict | None) -> list[str]:
    """Classes whose map lies mostly away from their call (share within the margin below ``LOCALITY_FLOOR``)."""
    return [name for name, entry in (locality or {}).items()
            if locality_share(entry) is not None and locality_share(entry) < LOCALITY_FLOOR]


def locality_note(locality: dict | None) -> str | None:
    """One sentence (figure title, console): "Share of each map within 5 mm of its call: NCR 6 %, ED 97 %, ET 99 %;
    the NCR map lies mostly away from its call and does not show what that call rests on"; None when unmeasured."""
    shares = [f"{name} {100 * locality_share(e):.0f} %" for name, e in (locality or {}).items()
              if locality_share(e) is not None]
    if not shares:
        return None
    note = f"Share of each map within {MARGIN_MM:g} mm of its call: " + ", ".join(shares)
    away = away_from_call(locality)
    if len(away) == 1:
        note += f"; the {away[0]} map lies mostly away from its call and does not show what that call rests on"
    elif away:
        note += (f"; the {' and '.join(away)} maps lie mostly away from their calls and do not show what those "
                 "calls rest on")
    return note
