"""Table changelog records, sent in whole record batches.

The worker writes the changelog record of every dossier a batch changed (~0.7 per event
on a live feed, where nearly every event changes its dossier). aiokafka's ``send`` costs
several µs per record: a future, the accumulator's bookkeeping, a running-loop lookup,
5-7% of a worker's CPU at 20,000 events/s. A batch's records are all known at once, so
they go to the producer's accumulator as whole record batches (``create_batch`` /
``send_batch``): the same records, in the same order, in the same partitions, flushed by
the same ``producer.flush()`` before Faust commits, so recovery reads them back alike.
"""
from __future__ import annotations


async def send_in_batches(producer, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> list:
    """Send ``(key, value)`` records to one partition of ``topic`` as whole record batches
    of the aiokafka ``producer``'s batch size, in order; returns one future per batch
    (resolved when the broker has acknowledged it). A None value is a tombstone."""
    sent = []
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(timestamp=None, key=key, value=value) is None:  # full (the first always fits)
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(timestamp=None, key=key, value=value)
    if batch.record_count():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    return sent
