"""The requests the failover tests put through a fault (tests/cli/failover.sh),
and the comparison with an undisturbed run:

  failover_load.py run HOST PORT MODEL OUT.json [N]   N concurrent streamed requests (default 16) of
                                                      every kind: greedy, seeded sampling, top-k/top-p,
                                                      penalties, stop strings, logprobs, n = 3, chat;
                                                      each one's choices (text, tokens, finish) to OUT.json
  failover_load.py compare A.json B.json              every request and choice identical, none failed

Waiting requests never time out here before 300 s: a fault is a pause."""
import json
import sys
import threading
import http.client

from checks import check, done, sse_events


def bodies(model, n):
    words = "the quick brown fox jumps over the lazy dog while serving many requests at once".split()
    out = []
    for i in range(n):
        prompt = " ".join(words[j % len(words)] for j in range(i * 5 % 23 + 2))
        b = {"model": model, "prompt": prompt, "max_tokens": 60 + (i * 13) % 70, "logprobs": 2, "ignore_eos": True}
        kind = i % 8
        if kind == 0:
            b.update(temperature=0)
        elif kind == 1:
            b.update(temperature=0.9, seed=100 + i)
        elif kind == 2:
            b.update(temperature=1.2, top_k=40, top_p=0.9, seed=200 + i)
        elif kind == 3:
            b.update(temperature=0.8, seed=300 + i, presence_penalty=0.5, frequency_penalty=0.3, repetition_penalty=1.2)
        elif kind == 4:
            b.update(temperature=0.7, seed=400 + i, stop=["e t", "zz"], ignore_eos=False)
        elif kind == 5:
            b.update(temperature=1.0, seed=500 + i, n=3)
        elif kind == 6:
            b = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": b["max_tokens"],
                 "temperature": 0.8, "seed": 600 + i, "logprobs": True, "top_logprobs": 2}
        else:
            b.update(temperature=0.6, min_p=0.05, seed=700 + i)
        out.append(b)
    return out


def stream(host, port, body):
    """{index: {"text", "tokens", "finish"}} of one streamed request, or {"error": ...}."""
    chat = "messages" in body
    conn = http.client.HTTPConnection(host, port, timeout=300)
    conn.request("POST", "/v1/chat/completions" if chat else "/v1/completions",
                 body=json.dumps(dict(body, stream=True)).encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        return {"error": f"HTTP {resp.status}: {resp.read()[:300]!r}"}
    choices, complete = {}, False
    for ev in sse_events(resp):
        if ev is None:
            complete = True
            break
        if "error" in ev:
            return {"error": ev["error"]["message"]}
        for ch in ev["choices"]:
            c = choices.setdefault(str(ch["index"]), {"text": "", "tokens": [], "finish": None})
            if chat:
                c["text"] += ch["delta"].get("content") or ""
                for t in ((ch.get("logprobs") or {}).get("content") or []):
                    c["tokens"].append([t["token"], [a["token"] for a in t["top_logprobs"]]])
            else:
                c["text"] += ch["text"]
                lp = ch.get("logprobs") or {}
                for t, alts in zip(lp.get("tokens", []), lp.get("top_logprobs") or []):
                    c["tokens"].append([t, sorted(alts)])
            c["finish"] = ch["finish_reason"] or c["finish"]
    conn.close()
    return choices if complete else {"error": "the stream ended without [DONE]"}


def run(host, port, model, out, n):
    bs = bodies(model, n)
    results = [None] * n

    def one(i):
        try:
            results[i] = stream(host, port, bs[i])
        except Exception as e:  # a dropped connection is a lost request: report it
            results[i] = {"error": f"{type(e).__name__}: {e}"}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(results, open(out, "w"))
    bad = [i for i, r in enumerate(results) if "error" in r]
    check(f"{n} requests completed", not bad, [results[i] for i in bad][:3])


def compare(a_path, b_path):
    a, b = json.load(open(a_path)), json.load(open(b_path))
    check("as many requests", len(a) == len(b) > 0, (len(a), len(b)))
    for i, (x, y) in enumerate(zip(a, b)):
        if "error" in x or "error" in y:
            check(f"request {i} completed in both runs", False, (x.get("error"), y.get("error")))
            continue
        same = x == y
        tokens = sum(len(c["tokens"]) for c in x.values())
        check(f"request {i}: {len(x)} choice(s), {tokens} tokens identical", same,
              next(((k, x[k], y.get(k)) for k in x if x[k] != y.get(k)), None))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]) if len(sys.argv) > 6 else 16)
        done("failover_load.py run")
    else:
        compare(sys.argv[2], sys.argv[3])
        done("failover_load.py compare")
