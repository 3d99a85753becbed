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
