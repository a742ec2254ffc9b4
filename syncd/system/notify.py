"""Desktop notices (`[daemon] notify = true`): tell the person once when an upload fails
for good, through `org.freedesktop.Notifications` on their session bus.

jeepney again (see `syncd.daemon.connectivity` for why): one method call on a short-lived
connection. A missing session bus or notification daemon is logged and otherwise
ignored: a notice is a courtesy, never a reason for the daemon to fail.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection

log = logging.getLogger(__name__)

NOTIFICATIONS = DBusAddress(
    "/org/freedesktop/Notifications",
    bus_name="org.freedesktop.Notifications",
    interface="org.freedesktop.Notifications",
)


class DesktopNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.address = (env if env is not None else os.environ).get("DBUS_SESSION_BUS_ADDRESS")

    def notify(self, summary: str, body: str) -> bool:
        """Show one notice; True if the notification daemon took it. Never raises."""
        if not self.address:
            log.debug("no session bus: desktop notice skipped")
            return False
        message = new_method_call(
            NOTIFICATIONS,
            "Notify",
            "susssasa{sv}i",
            ("syncd", 0, "dialog-warning", summary, body, [], {}, -1),
        )
        try:
            with open_dbus_connection(bus=self.address) as conn:
                reply = conn.send_and_get_reply(message, timeout=5)
        except (OSError, ValueError, TimeoutError) as exc:
            log.info("could not show a desktop notice: %s", exc)
            return False
        if reply.header.message_type.name == "error":
            log.info("the notification daemon refused the notice: %s", reply.body)
            return False
        return True
