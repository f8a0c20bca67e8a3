"""Batching concurrent calls into shared transactions, without a database."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from tasker.api.batching import Batcher


def test_calls_made_while_a_batch_is_stored_go_together_each_with_its_own_result():
    batches: list[list[int]] = []

    def store(items: list[int]) -> list[object]:
        batches.append(list(items))
        return [ValueError("odd %d" % i) if i % 2 else i * 10 for i in items]

    async def main() -> list[object]:
        with ThreadPoolExecutor(2) as executor:
            loop = asyncio.get_running_loop()
            batcher = Batcher(store, lambda f, *a: loop.run_in_executor(executor, f, *a), max_size=50, in_flight=1)
            return await asyncio.gather(*(batcher.submit(i) for i in range(100)), return_exceptions=True)

    results = asyncio.run(main())
    assert [r for r in results if not isinstance(r, Exception)] == [i * 10 for i in range(0, 100, 2)]
    assert [str(r) for r in results if isinstance(r, Exception)] == ["odd %d" % i for i in range(1, 100, 2)]
    assert batches == [list(range(50)), list(range(50, 100))], "all waiting went together, 50 at most"


def test_a_failing_batch_fails_each_of_its_callers():
    def store(items: list[int]) -> list[object]:
        raise RuntimeError("database gone")

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        batcher = Batcher(store, lambda f, *a: loop.run_in_executor(None, f, *a))
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)

    assert [str(r) for r in asyncio.run(main())] == ["database gone"] * 5


def test_a_lone_call_is_stored_at_once_by_itself():
    batches: list[list[int]] = []

    async def main() -> object:
        loop = asyncio.get_running_loop()
        batcher = Batcher(lambda items: batches.append(items) or items, lambda f, *a: loop.run_in_executor(None, f, *a))
        return await batcher.submit(7)

    assert asyncio.run(main()) == 7 and batches == [[7]]


def test_weighed_items_are_batched_up_to_the_weight_limit_and_a_heavy_one_goes_alone():
    batches: list[list[int]] = []

    def store(items: list[int]) -> list[object]:
        batches.append(list(items))
        return list(items)

    async def main() -> list[object]:
        with ThreadPoolExecutor(1) as executor:
            loop = asyncio.get_running_loop()
            batcher = Batcher(
                store,
                lambda f, *a: loop.run_in_executor(executor, f, *a),
                in_flight=1,
                weigh=lambda i: i,
                max_weight=10,
            )
            return await asyncio.gather(*(batcher.submit(i) for i in (1, 4, 4, 4, 30, 2, 9)))

    assert asyncio.run(main()) == [1, 4, 4, 4, 30, 2, 9]
    assert batches == [[1, 4, 4], [4], [30], [2], [9]], "at most 10 a batch; 30 alone, being over it"
