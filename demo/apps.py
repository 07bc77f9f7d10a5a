from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: the sandbox market on loopback, its history and the `demo` and `sandbox` commands.

    Installed only when the demo (or the test suite) runs (`DEMO=on`); no production app imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = "Demo"
