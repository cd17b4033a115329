"""Realistic province feed for demos, tests and benchmarks (see simulator/model.py).

    from simulator import SimConfig, generate, Summary
    for ev in generate(SimConfig(days=1, scale=0.1, seed=1)):
        ev.topic, ev.key, ev.value, ev.event_time

CLI: ``python -m simulator --help``.
"""
from simulator.model import (DOSSIER_TOPIC, RATING_TOPIC, Anomaly, SimConfig, SimEvent, Summary,
                             generate)

__all__ = ["generate", "SimConfig", "SimEvent", "Summary", "Anomaly", "DOSSIER_TOPIC", "RATING_TOPIC", "run"]


def run(config: SimConfig, output, *, rate: float | None = None, progress: bool = False,
        parallel: bool = False) -> Summary:
    """Generate and send every event to ``output`` (simulator.output.*); return the summary.

    ``parallel``: generate in a child process and only send in this one (with KafkaOutput
    the child also partitions and hands over per-partition chunks). Generation costs ~25 µs
    of Python per event and the Kafka output (aiokafka's batch builder) ~7 µs, so one process
    already does ~35k events/s on the 2-core bench machine; the child's start (~0.4 s) and
    hand-over only pay off with a spare core (see bench/bench_simulator.py)."""
    from simulator.output import Throttle, _raw_send
    throttle = Throttle(rate)
    send = _raw_send(output)
    bar = None
    if progress:
        from tqdm import tqdm
        expected = int(config.dossiers_per_year * config.scale / config.working_days_per_year
                       * config.days * 0.72 * 4.2)
        bar = tqdm(total=expected, unit="ev", unit_scale=True, desc="simulating")
    summary = Summary()
    try:
        if parallel and hasattr(output, "send_chunk"):
            # Kafka: the child also partitions; chunks of one partition's records come over
            from simulator.parallel import generate_batches
            for topic, partition, records in generate_batches(config, summary, output.partition_counts()):
                output.send_chunk(topic, partition, records)
                throttle.tick(len(records))
                if bar is not None:
                    bar.update(len(records))
            return summary
        if parallel:
            from simulator.parallel import generate_batches
            batches = generate_batches(config, summary)
        else:
            batches = _batches(config, summary)
        for batch in batches:
            for topic, key, value, ts_ms in batch:
                send(topic, key, value, ts_ms)
                throttle.tick()
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
        output.close()
    return summary


def _batches(config: SimConfig, summary: Summary, size: int = 1000):
    batch = []
    for ev in generate(config, summary):
        batch.append((ev.topic, ev.key, ev.value, int(ev.event_time.timestamp() * 1000)))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
