import threading

import pytest

from modules.request_limits import InputTooLong, LimitExceeded, RequestLimits, TooManyRequests


def test_per_user_cap_with_a_clear_message():
    limits = RequestLimits(max_active_per_user=3)
    slots = [limits.slot("alice") for _ in range(3)]
    with pytest.raises(TooManyRequests) as error:
        limits.slot("alice")
    assert "limit is 3" in str(error.value)
    assert isinstance(error.value, LimitExceeded)
    limits.slot("bob").release()                  # others are not affected
    slots[0].release()
    limits.slot("alice")                          # a freed slot can be taken again


def test_release_is_idempotent_and_with_block_releases_on_error():
    limits = RequestLimits(max_active_per_user=1)
    slot = limits.slot("alice")
    slot.release()
    slot.release()
    assert limits.active("alice") == 0
    with pytest.raises(RuntimeError):
        with limits.slot("alice"):
            raise RuntimeError("generation failed")
    assert limits.active("alice") == 0


def test_generator_closed_early_frees_its_slot():
    limits = RequestLimits(max_active_per_user=1)

    def handler():                     # the shape of a Gradio streaming handler
        with limits.slot("alice"):
            yield "a"
            yield "b"

    stream = handler()
    next(stream)
    assert limits.active("alice") == 1
    stream.close()                     # what happens when the browser goes away
    assert limits.active("alice") == 0


def test_input_size_limit():
    limits = RequestLimits(max_input_chars=10)
    limits.check_input("x" * 10)
    with pytest.raises(InputTooLong, match="limit is 10"):
        limits.check_input("x" * 11)


def test_counts_stay_right_under_threads():
    limits = RequestLimits(max_active_per_user=4)
    barrier = threading.Barrier(8)
    taken, refused = [], []

    def take():
        barrier.wait()
        try:
            taken.append(limits.slot("alice"))
        except TooManyRequests:
            refused.append(1)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(taken), len(refused)) == (4, 4)
    for slot in taken:
        slot.release()
    assert limits.active("alice") == 0
