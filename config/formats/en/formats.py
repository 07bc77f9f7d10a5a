"""English date formats for a product read in the Netherlands: day before month, 24-hour clock.

Django's `en` formats are American (`11/03/2026 2:30 p.m.`), ambiguous next to Dutch dates and
without seconds; these override them and leave everything else (input formats, numbers) to Django.
Measurements are shown to the second on detail pages: DATETIME_FORMAT carries seconds,
SHORT_DATETIME_FORMAT (tables) does not.
"""

DATE_FORMAT = "j M Y"  # 3 Nov 2026
TIME_FORMAT = "H:i"  # 14:30
DATETIME_FORMAT = "j M Y, H:i:s"  # 3 Nov 2026, 14:30:05
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"  # 3 Nov 2026, 14:30
