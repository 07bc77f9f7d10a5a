"""What every drain of `runmonitor` shares: the flag that says the monitor is stopping.

A drain handles one batch and returns whether more work is waiting; `runmonitor` wakes
the drains named in `settings.MONITOR_DRAINS`. When SIGTERM or SIGINT arrives it sets `stopping`:
each drain finishes the batch in flight and claims nothing new. It lives here, in the domain, because
drains of every app (compliance's notice e-mails, the monitor's checks) read it.
"""

from __future__ import annotations

import threading

stopping = threading.Event()
