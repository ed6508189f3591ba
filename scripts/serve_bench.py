"""Load test for `vlm serve`: N clients each send chat requests back to back. For each N it
reports requests (and generated tokens) per second with `--max-tokens`, and time to first
token: the latency of `max_tokens: 1` requests under the same N clients, which counts queueing,
preprocessing, prefill and one decode step. (Measuring it from the first streamed chunk would
miss models whose early tokens decode to no text, such as the synthetic ones.) Standard library
only.

    python3 scripts/serve_bench.py --url http://127.0.0.1:8080 --model synthetic:256m \
        --clients 1 4 16 --requests 4 --max-tokens 32 [--image photo.png] [--api-key KEY]
"""

import argparse
import base64
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def one_request(url, key, body):
    """Sends one streaming request; returns (first text chunk seconds, total seconds, completion
    tokens)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"status {resp.status}: {resp.read()[:300]!r}")
    ttft = None
    tokens = 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk["choices"]:
            if choice["delta"].get("content") and ttft is None:
                ttft = time.perf_counter() - start
    total = time.perf_counter() - start
    conn.close()
    return ttft if ttft is not None else total, total, tokens


def run(url, key, body, clients, per_client):
    results, errors = [], []
    lock = threading.Lock()

    def client():
        for _ in range(per_client):
            try:
                r = one_request(url, key, body)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies = sorted(r[1] for r in results)
    p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))] if latencies else None
    return {
        "requests": len(results),
        "errors": len(errors),
        "requests_per_s": round(len(results) / wall, 3),
        "tokens_per_s": round(sum(r[2] for r in results) / wall, 1),
        "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p90_s": round(p90, 3) if p90 is not None else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt", default="Write a short paragraph about the sea.")
    ap.add_argument("--image", help="send this image with every request")
    args = ap.parse_args()
    content = [{"type": "text", "text": args.prompt}]
    if args.image:
        with open(args.image, "rb") as f:
            url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
        content.insert(0, {"type": "image_url", "image_url": {"url": url}})
    body = json.dumps({
        "model": args.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": args.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    # One request first so that lazy set-up does not count.
    one_request(args.url, args.api_key, body)
    first = json.loads(body)
    first["max_tokens"] = 1
    first = json.dumps(first)
    for n in args.clients:
        load = run(args.url, args.api_key, body, n, args.requests)
        ttft = run(args.url, args.api_key, first, n, args.requests)
        report = {
            "clients": n,
            "requests": load["requests"],
            "errors": load["errors"] + ttft["errors"],
            "requests_per_s": load["requests_per_s"],
            "tokens_per_s": load["tokens_per_s"],
            "ttft_median_s": ttft["latency_median_s"],
            "ttft_p90_s": ttft["latency_p90_s"],
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
