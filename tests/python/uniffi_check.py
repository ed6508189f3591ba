"""The generated Python binding against a model: streaming, cancellation from another thread,
errors. Run by tests/bindings.rs as

    python3 uniffi_check.py BINDING_DIR MODEL_DIR IMAGE

where BINDING_DIR holds the generated vlm.py next to the library. Prints "ok" when every
check passes; a failed check raises (non-zero exit with a traceback).
"""

import sys
import threading

binding_dir, model, image = sys.argv[1:4]
sys.path.insert(0, binding_dir)

import vlm  # noqa: E402  (the generated module, found through sys.path above)


class Collect(vlm.VlmListener):
    """Keeps every piece of text and progress report."""

    def __init__(self):
        self.pieces = []
        self.progress = []

    def on_token(self, text):
        self.pieces.append(text)

    def on_progress(self, progress):
        self.progress.append(progress)


class CancelAfterFirstPiece(Collect):
    """Blocks on the first piece until another thread has set the cancel token."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def on_token(self, text):
        super().on_token(text)
        self.started.set()
        if not self.cancelled.wait(60):
            raise TimeoutError("the cancelling thread did not run")


class Raises(Collect):
    def on_token(self, text):
        raise ValueError("listener gave up")


engine = vlm.VlmEngine.load(model, None)
assert engine.has_vision()

# 0. Loading with options reports each step, in order.
loading = Collect()
capped = vlm.VlmEngine.load_with_options(
    model, None, vlm.VlmEngineOptions(max_context=engine.context_length() - 1), loading
)
assert capped.context_length() == engine.context_length() - 1
steps = [(p.stage, p.done, p.total) for p in loading.progress if p.is_LOAD()]
assert steps == [
    (vlm.VlmLoadStage.CONFIG, 1, 3),
    (vlm.VlmLoadStage.WEIGHTS, 2, 3),
    (vlm.VlmLoadStage.MODEL, 3, 3),
], loading.progress
image_input = vlm.VlmImage.PATH(path=image)

# 1. Describe with a streamed callback: the streamed pieces are the returned text.
listener = Collect()
answer = engine.session().describe(
    image_input, vlm.VlmGenerateOptions(max_new_tokens=24), listener, None
)
assert answer.text, "empty answer"
assert "".join(listener.pieces) == answer.text, (listener.pieces, answer.text)
assert answer.finish in (vlm.VlmFinishReason.EOS, vlm.VlmFinishReason.MAX_TOKENS), answer
assert 0 < answer.completion_tokens <= 24, answer
assert answer.image_tokens > 0 and answer.prompt_tokens > answer.image_tokens, answer
views = [p for p in listener.progress if p.is_ENCODE_VIEWS()]
assert views and views[-1].done == views[-1].total > 0, listener.progress
assert any(p.is_PREFILL() for p in listener.progress), listener.progress

# 2. Cancel a second generation from another Python thread: the answer ends as cancelled
# with the text so far, not with an error.
cancel = vlm.VlmCancelToken()
listener = CancelAfterFirstPiece()


def cancel_when_started():
    if listener.started.wait(60):
        cancel.cancel()
        listener.cancelled.set()


thread = threading.Thread(target=cancel_when_started)
thread.start()
session = engine.session()
answer = session.ask(
    [image_input],
    "What is in this picture?",
    vlm.VlmGenerateOptions(max_new_tokens=200, ignore_eos=True),
    listener,
    cancel,
)
thread.join()
assert cancel.is_cancelled()
assert answer.finish == vlm.VlmFinishReason.CANCELLED, answer
assert 1 <= answer.completion_tokens < 200, answer
assert "".join(listener.pieces) == answer.text, (listener.pieces, answer.text)

# The session goes on after a cancelled turn; a reset one starts over.
follow_up = session.ask([], "And then?", vlm.VlmGenerateOptions(max_new_tokens=4), None, None)
assert follow_up.prompt_tokens > answer.prompt_tokens, (follow_up, answer)
session.reset()
fresh = session.ask([], "And then?", vlm.VlmGenerateOptions(max_new_tokens=4), None, None)
assert fresh.prompt_tokens < follow_up.prompt_tokens, (fresh, follow_up)

# 3. Errors arrive as VlmError subclasses with messages naming the input.
try:
    vlm.VlmEngine.load("/no/such/model-dir", None)
    raise AssertionError("loading a missing model succeeded")
except vlm.VlmError.Load as e:
    assert "/no/such/model-dir" in str(e), str(e)

# This library is built without the `cuda` feature: choosing CUDA names the feature.
try:
    vlm.VlmEngine.load_with_options(model, None, vlm.VlmEngineOptions(device="cuda:0"), None)
    raise AssertionError("a device that is not compiled in was accepted")
except vlm.VlmError.Load as e:
    assert "cuda:0" in str(e) and "--features cuda" in str(e), str(e)

try:
    vlm.VlmEngine.load_with_options(model, None, vlm.VlmEngineOptions(device="gpu"), None)
    raise AssertionError("an unknown device name was accepted")
except vlm.VlmError.Input as e:
    assert "gpu" in str(e), str(e)

frame = vlm.VlmImage.RGB8(width=4, height=4, pixels=bytes(47))
try:
    engine.session().ask([frame], "What is this?", vlm.VlmGenerateOptions(), None, None)
    raise AssertionError("a short RGB buffer was accepted")
except vlm.VlmError.Input as e:
    assert "48" in str(e) and "47" in str(e), str(e)

try:
    engine.session().ask([], "Hi", vlm.VlmGenerateOptions(max_new_tokens=0), None, None)
    raise AssertionError("max_new_tokens=0 was accepted")
except vlm.VlmError.Input as e:
    assert "max" in str(e), str(e)

# An exception raised by the listener stops the generation and comes back as an error.
try:
    engine.session().ask(
        [], "Hi", vlm.VlmGenerateOptions(max_new_tokens=8, ignore_eos=True), Raises(), None
    )
    raise AssertionError("the listener's exception was swallowed")
except vlm.VlmError.Listener as e:
    assert "listener gave up" in str(e), str(e)

print("ok")
