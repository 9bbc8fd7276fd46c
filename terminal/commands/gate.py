"""``terminal gate``: a gate, one tap after another, as ``terminal gate transit`` and
``terminal gate parking``, each with only its own options (and the common ones of
:func:`terminal.commands.common.gate_options`).

``transit`` (:mod:`terminal.commands.transit`) decides offline
(:class:`terminal.apps.transit.TransitGate`) and uploads its journal to the back office;
``parking`` (:mod:`terminal.commands.parking`) pre-authorises at entry and completes at
exit (:class:`terminal.apps.parking.ParkingGate`).
"""

from __future__ import annotations

import click

from terminal.commands.parking import parking_command
from terminal.commands.transit import transit_command

__all__ = ["gate_command"]


@click.group("gate", context_settings={"help_option_names": ["-h", "--help"]})
def gate_command() -> None:
    """Run a gate: wait for a card, decide, open or keep closed, wait for the next.

    One line per tap on standard output (--json: one JSON object), messages on
    standard error. Exit codes (`terminal --help`): 2 usage, 8 no card within
    --timeout, 9 reader, 10 configuration, 11 journal not writable (transit); parking
    checks its issuer first: 6 when it refuses this terminal.
    """


gate_command.add_command(transit_command)
gate_command.add_command(parking_command)
