"""Dutch date formats: Django's `nl` formats, with seconds on detail pages (see ../en/formats.py).

Django's own: DATE_FORMAT `j F Y` (3 november 2026), TIME_FORMAT `H:i`, SHORT_DATE_FORMAT `j-n-Y`
(3-11-2026), SHORT_DATETIME_FORMAT `j-n-Y H:i` (3-11-2026 14:30).
"""

DATETIME_FORMAT = "j F Y H:i:s"  # 3 november 2026 14:30:05
