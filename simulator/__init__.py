"""Realistic province feed for demos, tests and benchmarks (see simulator/model.py).

    from simulator import SimConfig, generate, Summary
    for ev in generate(SimConfig(days=1, scale=0.1, seed=1)):
        ev.topic, ev.key, ev.value, ev.event_time

CLI: ``python -m simulator --help``.
"""
from simulator.model import (DOSSIER_TOPIC, RATING_TOPIC, Anomaly, SimConfig, SimEvent, Summary,
                             generate)

__all__ = ["generate", "SimConfig", "SimEvent", "Summary", "Anomaly", "DOSSIER_TOPIC", "RATING_TOPIC", "run"]


def run(config: SimConfig, output, *, rate: float | None = None, progress: bool = False) -> Summary:
    """Generate and send every event to ``output`` (simulator.output.*); return the summary."""
    from simulator.output import Throttle
    summary = Summary()
    throttle = Throttle(rate)
    bar = None
    i = 0
    if progress:
        from tqdm import tqdm
        expected = int(config.dossiers_per_year * config.scale / config.working_days_per_year
                       * config.days * 0.72 * 4.2)
        bar = tqdm(total=expected, unit="ev", unit_scale=True, desc="simulating")
    try:
        for i, ev in enumerate(generate(config, summary), 1):
            output.send(ev)
            throttle.tick()
            if bar is not None and i % 1000 == 0:
                bar.update(1000)
    finally:
        if bar is not None:
            bar.update(i % 1000)
            bar.close()
        output.close()
    return summary
