"""What every command starts from: the config named on the command line (or the default
one), its instance, the config itself loaded as far as the command needs, and the
client of that instance's daemon.

Only commands that talk to the store load the credentials (`store=True`); the others
work in a shell that has none, as the service's credentials are the service's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from syncd.config import Config, Instance, find_config_path, instance_for, load_config
from syncd.control.client import ControlClient


@dataclass(frozen=True)
class Invocation:
    config_arg: str | None
    config_path: Path
    instance: Instance
    env: Mapping[str, str]

    @classmethod
    def of(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Invocation:
        env = os.environ if env is None else env
        config_arg = getattr(args, "config", None)
        path = find_config_path(config_arg, env)
        return cls(config_arg, path, instance_for(path, env), env)

    @property
    def socket_path(self) -> Path:
        return self.instance.socket_path(self.env)

    def config(self, *, store: bool = False) -> Config:
        """The checked config (`ConfigError`, exit 78, lists every problem); with
        `store`, the credentials too."""
        return load_config(self.config_path, self.env, secrets=store)

    def client(self, timeout: float = 10) -> ControlClient:
        return ControlClient(self.socket_path, timeout=timeout)
