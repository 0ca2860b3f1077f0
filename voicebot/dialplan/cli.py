"""Dialplan commands for the ``voicebot`` CLI (check, schema, test, graph, chat)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the dialplan commands on the top-level parser."""
