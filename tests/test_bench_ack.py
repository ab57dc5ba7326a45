"""`python -m bench.ack` runs: the bot (and the floor's minimal bot) as processes against the fake Discord."""
import pytest


@pytest.mark.slow
def test_ack_benchmark_runs_and_reports_each_scenario(capsys):
    from bench.ack import main

    assert main(["--commands", "10", "--users", "5", "--scenarios", "floor", "idle"]) == 0
    out = capsys.readouterr().out
    assert "| floor: a bot that answers at once |" in out and "| idle (baseline) |" in out
    assert "| 0/10 |" in out  # none failed
