"""Load and abuse for facet's HTTP API, with Python's standard library only
(used by tests/cli/http.sh):

  http_load.py invariance HOST PORT MODEL N   N concurrent streaming requests (mixed prompt and output
                                              lengths; greedy and seeded sampling) give exactly the tokens
                                              each gives alone
  http_load.py cancel HOST PORT MODEL N       N streaming clients hang up mid-generation: KV blocks and
                                              running sequences go back to zero, and the server serves
  http_load.py badinput HOST PORT MODEL       every malformed request gets a 4xx JSON error naming the
                                              problem, never a 5xx; a good request works afterwards
  http_load.py preempt HOST PORT MODEL N      like invariance, on a KV cache too small for all at once:
                                              everything completes, identically, and preemptions happened
  http_load.py prefix HOST PORT MODEL N PORT2 N concurrent requests sharing a long prefix, twice on the
                                              server at PORT (prefix caching on) and once on PORT2 (off):
                                              the same tokens every time, and the cache was used
Prints one line per check; exits 1 on any failure.
"""
import http.client
import json
import os
import socket
import sys

from checks import check, done, sse_events
import threading
import time

KEY = os.environ.get("FACET_API_KEY")  # sent as a Bearer token when set


def with_key(headers):
    return dict(headers, Authorization=f"Bearer {KEY}") if KEY else headers




def request(host, port, method, path, body=None, headers=None, timeout=120):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=with_key(headers or {"Content-Type": "application/json"}))
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def stream(host, port, body, stop_after=None):
    """A streaming completion: (tokens, text, finish) -- tokens as the logprob token strings."""
    conn = http.client.HTTPConnection(host, port, timeout=300)
    conn.request("POST", "/v1/completions", body=json.dumps(dict(body, stream=True)).encode(),
                 headers=with_key({"Content-Type": "application/json"}))
    resp = conn.getresponse()
    if resp.status != 200:
        return None, resp.read().decode(errors="replace"), None
    tokens, text, finish, events = [], "", None, 0
    for ev in sse_events(resp):
        if ev is None:
            break
        if "error" in ev:
            return None, ev["error"]["message"], "error"
        ch = ev["choices"][0]
        text += ch["text"]
        if ch.get("logprobs"):
            tokens += ch["logprobs"]["tokens"]
        finish = ch["finish_reason"] or finish
        events += 1
        if stop_after and events >= stop_after:
            conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            return tokens, text, "hung up"
    conn.close()
    return tokens, text, finish


def specs(model, n, long_outputs=False):
    words = "the quick brown fox jumps over the lazy dog while serving many requests at once".split()
    out = []
    for i in range(n):
        prompt = " ".join(words[j % len(words)] for j in range(i * 7 % 40 + 1))
        body = {"model": model, "prompt": prompt, "max_tokens": (120 if long_outputs else 4 + (i * 5) % 37),
                "logprobs": 0, "ignore_eos": True}
        if i % 2:
            body.update(temperature=0.9, top_k=50, seed=1000 + i)
        else:
            body.update(temperature=0)
        out.append(body)
    return out


def run_concurrently(host, port, bodies):
    results = [None] * len(bodies)

    def one(i):
        results[i] = stream(host, port, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def metric(host, port, name):
    status, body = request(host, port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def invariance(host, port, model, n, long_outputs=False):
    bodies = specs(model, n, long_outputs)
    alone = [stream(host, port, b) for b in bodies]
    check(f"{n} requests alone all complete", all(a[2] == "length" for a in alone), [a[2] for a in alone])
    together = run_concurrently(host, port, bodies)
    same = [i for i in range(n) if together[i][:2] == alone[i][:2] and together[i][0]]
    check(f"{n} concurrent streaming requests give exactly the tokens each gives alone ({len(same)}/{n})",
          len(same) == n, [i for i in range(n) if i not in same])


def preempt(host, port, model, n):
    before = metric(host, port, "facet_preemptions_total") or 0
    invariance(host, port, model, n, long_outputs=True)
    after = metric(host, port, "facet_preemptions_total") or 0
    check(f"the small KV cache forced preemptions ({after - before:.0f})", after > before)
    check("and every block is free again", metric(host, port, "facet_kv_blocks_used") == 0)


def prefix(host, port, model, n, port_plain):
    system = "You are a careful assistant who answers in short sentences. " * 8
    bodies = specs(model, n)
    for b in bodies:
        b["prompt"] = system + b["prompt"]
    before = metric(host, port, "facet_prefix_cache_hit_tokens_total") or 0
    first = run_concurrently(host, port, bodies)
    again = run_concurrently(host, port, bodies)
    plain = run_concurrently(host, port_plain, bodies)
    hits = (metric(host, port, "facet_prefix_cache_hit_tokens_total") or 0) - before
    check(f"{n} requests sharing a prefix found it in the cache ({hits:.0f} tokens)", hits > 0)
    check("the server without prefix caching found nothing",
          (metric(host, port_plain, "facet_prefix_cache_hit_tokens_total") or 0) == 0)
    same = [i for i in range(n) if first[i][:2] == plain[i][:2] == again[i][:2] and plain[i][0]]
    check(f"cached and uncached runs give exactly the same tokens ({len(same)}/{n})", len(same) == n,
          [i for i in range(n) if i not in same])


def cancel(host, port, model, n):
    body = {"model": model, "prompt": "Hello there", "max_tokens": 1500, "ignore_eos": True, "temperature": 0}
    threads = [threading.Thread(target=stream, args=(host, port, body, 2)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.time() + 30
    used = running = None
    while time.time() < deadline:
        used, running = metric(host, port, "facet_kv_blocks_used"), metric(host, port, "facet_running_sequences")
        waiting = metric(host, port, "facet_queue_length")
        if used == 0 and running == 0 and waiting == 0:
            break
        time.sleep(0.2)
    check(f"{n} clients hung up mid-generation: KV blocks back to zero", used == 0, used)
    check("and no sequence left running", running == 0, running)
    status, out = request(host, port, "POST", "/v1/completions", {"model": model, "prompt": "Hi", "max_tokens": 3})
    check("the server still serves", status == 200, out)


def badinput(host, port, model):
    big = b'{"model": "' + model.encode() + b'", "prompt": "' + b"a" * (5 << 20) + b'"}'
    cases = [
        ("malformed JSON", "/v1/completions", b'{"model": '),
        ("not an object", "/v1/completions", b'[1, 2, 3]'),
        ("empty body", "/v1/completions", b''),
        ("unknown field", "/v1/completions", {"model": model, "prompt": "x", "frobnicate": 1}),
        ("no model", "/v1/completions", {"prompt": "x"}),
        ("unknown model", "/v1/completions", {"model": "gpt-9", "prompt": "x"}),
        ("prompt of the wrong type", "/v1/completions", {"model": model, "prompt": 42}),
        ("empty prompt", "/v1/completions", {"model": model, "prompt": ""}),
        ("several prompts", "/v1/completions", {"model": model, "prompt": ["a", "b"]}),
        ("token id out of range", "/v1/completions", {"model": model, "prompt": [2, 99999999]}),
        ("negative token id", "/v1/completions", {"model": model, "prompt": [2, -5]}),
        ("max_tokens as a string", "/v1/completions", {"model": model, "prompt": "x", "max_tokens": "10"}),
        ("max_tokens zero", "/v1/completions", {"model": model, "prompt": "x", "max_tokens": 0}),
        ("max_tokens past the context", "/v1/completions", {"model": model, "prompt": "x", "max_tokens": 100000}),
        ("fractional max_tokens", "/v1/completions", {"model": model, "prompt": "x", "max_tokens": 2.5}),
        ("temperature out of range", "/v1/completions", {"model": model, "prompt": "x", "temperature": 3}),
        ("temperature NaN-ish", "/v1/completions", b'{"model": "%s", "prompt": "x", "temperature": 1e999}' % model.encode()),
        ("top_p zero", "/v1/completions", {"model": model, "prompt": "x", "top_p": 0}),
        ("top_k negative", "/v1/completions", {"model": model, "prompt": "x", "top_k": -7}),
        ("min_p above 1", "/v1/completions", {"model": model, "prompt": "x", "min_p": 1.5}),
        ("presence_penalty too big", "/v1/completions", {"model": model, "prompt": "x", "presence_penalty": 9}),
        ("repetition_penalty zero", "/v1/completions", {"model": model, "prompt": "x", "repetition_penalty": 0}),
        ("n too large", "/v1/completions", {"model": model, "prompt": "x", "n": 1000}),
        ("logprobs too many", "/v1/completions", {"model": model, "prompt": "x", "logprobs": 50}),
        ("stop of the wrong type", "/v1/completions", {"model": model, "prompt": "x", "stop": 5}),
        ("too many stops", "/v1/completions", {"model": model, "prompt": "x", "stop": ["a"] * 40}),
        ("empty stop", "/v1/completions", {"model": model, "prompt": "x", "stop": [""]}),
        ("stream_options without stream", "/v1/completions", {"model": model, "prompt": "x", "stream_options": {}}),
        ("echo", "/v1/completions", {"model": model, "prompt": "x", "echo": True}),
        ("seed not an integer", "/v1/completions", {"model": model, "prompt": "x", "seed": "abc"}),
        ("invalid UTF-8 in the prompt", "/v1/completions", b'{"model": "%s", "prompt": "a\xff\xfeb"}' % model.encode()),
        ("huge body", "/v1/completions", big),
        ("over-long prompt", "/v1/completions", {"model": model, "prompt": "word " * 5000}),
        ("chat: no messages", "/v1/chat/completions", {"model": model}),
        ("chat: empty messages", "/v1/chat/completions", {"model": model, "messages": []}),
        ("chat: messages not a list", "/v1/chat/completions", {"model": model, "messages": "hi"}),
        ("chat: bad role", "/v1/chat/completions", {"model": model, "messages": [{"role": "wizard", "content": "x"}]}),
        ("chat: no content", "/v1/chat/completions", {"model": model, "messages": [{"role": "user"}]}),
        ("chat: image content", "/v1/chat/completions",
         {"model": model, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
        ("chat: ends with the assistant", "/v1/chat/completions",
         {"model": model, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
        ("chat: two users in a row", "/v1/chat/completions",
         {"model": model, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
        ("chat: tools", "/v1/chat/completions",
         {"model": model, "messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function"}]}),
        ("chat: top_logprobs without logprobs", "/v1/chat/completions",
         {"model": model, "messages": [{"role": "user", "content": "a"}], "top_logprobs": 2}),
        ("chat: invalid UTF-8", "/v1/chat/completions",
         b'{"model": "%s", "messages": [{"role": "user", "content": "\xc3\x28"}]}' % model.encode()),
        ("GET on a POST endpoint", "GET /v1/completions", None),
        ("unknown endpoint", "/v1/embeddings", {"model": model, "input": "x"}),
    ]
    for what, path, body in cases:
        method = "POST"
        if path.startswith("GET "):
            method, path = "GET", path[4:]
        try:
            status, out = request(host, port, method, path, body)
        except Exception as e:  # a crash or a dropped connection
            check(f"{what}: answered", False, e)
            continue
        try:
            err = json.loads(out)["error"]
            named = bool(err["message"])
        except Exception:
            named = False
        check(f"{what}: {status} {out[:140].decode(errors='replace')}", 400 <= status < 500 and named, out[:300])
    status, out = request(host, port, "POST", "/v1/completions", {"model": model, "prompt": "Hi", "max_tokens": 3})
    check("a good request afterwards works", status == 200 and json.loads(out)["choices"][0]["text"] is not None, out)
    status, out = request(host, port, "POST", "/v1/chat/completions",
                          {"model": model, "max_tokens": 3,
                           "messages": [{"role": "user", "content": "What is <start_of_turn>?"}]})
    check("control-token text in user content is fine (plain text)", status == 200, out)


def main():
    cmd, host, port, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    {"invariance": lambda: invariance(host, port, model, n), "cancel": lambda: cancel(host, port, model, n),
     "badinput": lambda: badinput(host, port, model), "preempt": lambda: preempt(host, port, model, n),
     "prefix": lambda: prefix(host, port, model, n, int(sys.argv[6]))}[cmd]()
    done(f"http_load.py {cmd}")


if __name__ == "__main__":
    main()
