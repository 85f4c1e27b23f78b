"""facet's HTTP API through the `openai` Python package (tests/requirements.txt):
completions and chat, streaming and not, n > 1, logprobs, stop strings, and
the errors the library raises for bad requests and a wrong API key.

  openai_check.py BASE_URL API_KEY MODEL
"""
import sys

from checks import check, done

import openai
from openai import OpenAI

base, key, model = sys.argv[1:4]
client = OpenAI(base_url=base, api_key=key, max_retries=0)




# completions, not streamed
r = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
check("completion returns text", isinstance(r.choices[0].text, str) and r.choices[0].finish_reason in ("stop", "length"))
check("completion usage", r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8 and
      r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)
greedy_text = r.choices[0].text

# completions, streamed: the same text, pieced together
pieces, finish = [], None
for chunk in client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0,
                                       stream=True):
    pieces.append(chunk.choices[0].text)
    finish = chunk.choices[0].finish_reason or finish
check("streamed completion = whole completion", "".join(pieces) == greedy_text, (pieces, greedy_text))
check("stream ends with a finish reason", finish in ("stop", "length"))

# chat, not streamed and streamed, seeded sampling
kw = dict(model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}],
          max_tokens=10, temperature=0.8, seed=42)
c = client.chat.completions.create(**kw)
check("chat returns an assistant message", c.choices[0].message.role == "assistant" and
      isinstance(c.choices[0].message.content, str))
again = client.chat.completions.create(**kw)
check("the same seed gives the same answer", again.choices[0].message.content == c.choices[0].message.content)
text, usage = "", None
for chunk in client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
check("streamed chat = whole chat", text == c.choices[0].message.content, (text, c.choices[0].message.content))
check("include_usage sends usage", usage is not None and usage.completion_tokens == c.usage.completion_tokens, usage)

# n choices, logprobs
r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=1.0, n=3, seed=7,
                              logprobs=2)
check("n=3 gives 3 choices", len(r.choices) == 3 and sorted(ch.index for ch in r.choices) == [0, 1, 2])
lp = r.choices[0].logprobs
check("completion logprobs", lp is not None and len(lp.tokens) == len(lp.token_logprobs) > 0 and
      all(len(t) <= 2 for t in lp.top_logprobs) and all(x <= 0 for x in lp.token_logprobs))
c = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                   logprobs=True, top_logprobs=3)
content = c.choices[0].logprobs.content
check("chat logprobs", len(content) > 0 and all(len(e.top_logprobs) == 3 for e in content))

# a stop string: the text ends before it
full = client.completions.create(model=model, prompt="Tell me", max_tokens=20, temperature=0).choices[0].text
if len(full) > 6:
    stop = full[3:6]
    r = client.completions.create(model=model, prompt="Tell me", max_tokens=20, temperature=0, stop=[stop])
    check("a stop string cuts the text", r.choices[0].text == full[:full.index(stop)] and r.choices[0].finish_reason == "stop",
          (r.choices[0].text, stop))

# errors the library raises
try:
    client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    check("an unknown model is refused", False)
except openai.NotFoundError as e:
    check("an unknown model is refused (404)", "does not exist" in str(e))
try:
    client.completions.create(model=model, prompt="x", max_tokens=2, temperature=5)
    check("temperature 5 is refused", False)
except openai.BadRequestError as e:
    check("temperature 5 is refused (400)", "temperature" in str(e))
try:
    OpenAI(base_url=base, api_key="wrong", max_retries=0).completions.create(model=model, prompt="x", max_tokens=2)
    check("a wrong API key is refused", key == "none")
except openai.AuthenticationError:
    check("a wrong API key is refused (401)", key != "none")
models = client.models.list()
check("models.list names the model", [m.id for m in models.data] == [model])

done("openai_check.py")
