"""`syncd config example|path`: a config to start from, and where a config's daemon lives.

Neither needs a valid config: `example` is what a user without one starts from (it
ships inside the package, so an installed wheel has it too), and `path` shows the
places that follow from the config's path alone.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from syncd.cli.context import Invocation
from syncd.cli.errors import EXIT_OK
from syncd.cli.output import print_json
from syncd.config import state_dir_of


def example_config() -> str:
    return resources.files("syncd").joinpath("data", "config.example.toml").read_text("utf-8")


def cmd_config(args: argparse.Namespace, ctx: Invocation) -> int:
    if args.config_command == "example":
        if args.json:  # its settings as data (the comments are in the TOML form)
            import tomllib

            print_json(tomllib.loads(example_config()))
        else:
            sys.stdout.write(example_config())
        return EXIT_OK
    places = {
        "config": str(ctx.config_path),
        "exists": ctx.config_path.is_file(),
        "instance": ctx.instance.name,
        "socket": str(ctx.socket_path),
        "state_dir": str(state_dir_of(ctx.config_path, ctx.env)),
        "unit": ctx.instance.unit,
    }
    if args.json:
        print_json(places)
        return EXIT_OK
    for key, value in places.items():
        print(f"{key + ':':<11}{'(default)' if value is None else value}")
    return EXIT_OK
