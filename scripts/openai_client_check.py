"""The official `openai` Python client against `vlm serve`: a plain, a streaming, an image and
a json_schema request, and a wrong key. Run by tests/serve.rs as

    openai_client_check.py BASE_URL MODEL API_KEY IMAGE.png

Prints one `<check> ok` line per check; any failure raises (non-zero exit).
"""

import base64
import json
import sys

import openai


def main() -> None:
    base_url, model, key, image = sys.argv[1:5]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)

    plain = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hello!"}],
        max_tokens=8,
    )
    assert plain.object == "chat.completion", plain
    assert plain.choices[0].message.role == "assistant", plain
    assert isinstance(plain.choices[0].message.content, str), plain
    assert plain.usage.completion_tokens == 8, plain.usage
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + 8, plain.usage
    print("plain ok")

    pieces = []
    finish = None
    usage = None
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hello!"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(pieces) == plain.choices[0].message.content, (pieces, plain)
    assert finish == "length", finish
    assert usage is not None and usage.completion_tokens == 8, usage
    print("stream ok")

    with open(image, "rb") as f:
        url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
    described = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "Describe this image."},
                ],
            }
        ],
        max_tokens=6,
        temperature=0.7,
        top_p=0.9,
        seed=7,
    )
    # Image tokens make the prompt far longer than the text alone.
    assert described.usage.prompt_tokens > plain.usage.prompt_tokens + 50, described.usage
    print("image ok")

    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    structured = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Is the sky blue?"}],
        max_tokens=64,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "yes_no", "schema": schema, "strict": True},
        },
    )
    value = json.loads(structured.choices[0].message.content)
    assert value["answer"] in ("yes", "no"), value
    print("json_schema ok")

    wrong = openai.OpenAI(base_url=base_url, api_key=key + "x", max_retries=0)
    try:
        wrong.models.list()
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("a wrong key was accepted")
    print("auth ok")


if __name__ == "__main__":
    main()
