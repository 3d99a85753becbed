"""The aggregator's take buffer, driven through the stream hooks it uses, with messages and
folds at random moments: every message is handed over exactly once, in order."""
import asyncio
import random

from services.aggregator.app import adaptive_take


class Channel:
    def __aiter__(self):
        return self

    async def __anext__(self):
        raise StopAsyncIteration


class HookedStream:
    """The hooks of a Faust stream that adaptive_take uses; deliver() plays the drainer."""

    def __init__(self):
        self._processors, self.enable_acks, self.should_stop = [], True, False
        self.current_event, self.channel = None, Channel()

    def add_processor(self, processor):
        self._processors.append(processor)

    def _enable_passive(self, channel):
        pass

    async def wait_for_stopped(self, event, timeout):
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def wait(self, event):
        await event.wait()

    async def crash(self, exc):
        raise exc

    async def deliver(self, message):
        self.current_event = message
        for processor in self._processors:
            await processor(message)


def test_every_message_is_handed_over_once_in_order_whatever_the_timing():
    rng = random.Random(7)
    total = 3000

    async def run():
        stream, handed, windows = HookedStream(), [], []

        async def produce():
            await asyncio.sleep(0.01)
            for message in range(total):
                await stream.deliver(message)
                if rng.random() < 0.3:
                    await asyncio.sleep(rng.choice([0, 0.001, 0.003, 0.02]))

        producer = asyncio.create_task(produce())

        async def stop_after_the_last_message():
            await producer
            await asyncio.sleep(1.0)  # far longer than a window: whatever is left was lost
            stream.should_stop = True

        stopper = asyncio.create_task(stop_after_the_last_message())
        async for batch in adaptive_take(stream, max_messages=60, window_s=0.02, linger_s=0.001):
            await asyncio.sleep(rng.choice([0, 0, 0.002, 0.006, 0.025]))  # a fold, at times longer than the window
            windows.append(len(batch))
            handed.extend(batch)
        await stopper
        return handed, windows

    handed, windows = asyncio.run(asyncio.wait_for(run(), 60))
    assert handed == list(range(total))
    assert max(windows) <= 60 and len(windows) > 20


def test_under_load_a_window_runs_from_the_previous_hand_over_not_from_the_end_of_its_fold():
    """A message every 5 ms for 1.5 s, a 100 ms window, folds of 90 ms: a batch every
    ~100 ms (~15), not every window + fold (~190 ms, ~8). As in Faust, messages wait in a
    channel while the buffer is handed over, and a drainer delivers them."""

    async def run():
        stream, channel, windows = HookedStream(), asyncio.Queue(), []

        async def produce():
            for message in range(300):
                channel.put_nowait(message)
                await asyncio.sleep(0.005)
            channel.put_nowait(None)

        async def drain():
            while (message := await channel.get()) is not None:
                await stream.deliver(message)
            await asyncio.sleep(0.3)
            stream.should_stop = True

        tasks = [asyncio.create_task(produce()), asyncio.create_task(drain())]
        async for batch in adaptive_take(stream, max_messages=10_000, window_s=0.1, linger_s=0.001):
            windows.append(len(batch))
            await asyncio.sleep(0.09)  # the fold
        await asyncio.gather(*tasks)
        return windows

    windows = asyncio.run(asyncio.wait_for(run(), 30))
    assert sum(windows) == 300
    assert len(windows) >= 14, windows


def test_a_batch_ends_at_the_message_that_brings_it_to_max_bytes():
    """A backlog of 100 messages of 10 bytes, max_bytes 35: batches of 4 messages (the
    fourth brings it past 35), every message once, in order."""

    async def run():
        stream, handed, windows = HookedStream(), [], []

        async def produce():
            for message in range(100):
                await stream.deliver(message)
            await asyncio.sleep(0.3)
            stream.should_stop = True

        producer = asyncio.create_task(produce())
        async for batch in adaptive_take(stream, max_messages=10_000, window_s=0.05, linger_s=0.001,
                                         max_bytes=35, size=lambda message: 10):
            windows.append(len(batch))
            handed.extend(batch)
            await asyncio.sleep(0.01)  # the fold
        await producer
        return handed, windows

    handed, windows = asyncio.run(asyncio.wait_for(run(), 30))
    assert handed == list(range(100))
    assert max(windows) == 4 and len(windows) == 25, windows
