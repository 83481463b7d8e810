"""End-to-end tests of `quarrel chat` on stories260K (run by test_chat.sh).

usage: chat_repl.py QUARREL MODEL

The model has no chat template, so chat uses chatml; the expected prompts below are chatml
rendered by hand. Piped stdin (one turn per line, only replies on stdout) and a pseudo-terminal
(prompt, line editing, Ctrl-C) are both driven. Every wait has a timeout.
"""
import json
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import termios
import time

Q, M = sys.argv[1], sys.argv[2]
BASE = ["chat", "-m", M, "--temp", "0", "-t", "1"]
TMP = tempfile.mkdtemp(prefix="qr_chat_")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)
    return cond


def pipe(lines, *args, timeout=180):
    """Run chat with `lines` on stdin; returns (rc, stdout, stderr) as text."""
    p = subprocess.run([Q] + BASE + list(args), input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def chatml(messages, gen=True):
    """llama.cpp's chatml, worked by hand."""
    s = "".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"]) for m in messages)
    return s + ("<|im_start|>assistant\n" if gen else "")


def tokens(text):
    """Token ids as `quarrel tokenize --special` gives them (BOS added, as chat adds it)."""
    out = subprocess.run([Q, "tokenize", "-m", M, "--special", "--ids", text],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [int(x) for x in out.split()]


def turn_counts(stderr):
    """[(conversation, reused, evaluated)] from the --verbose lines."""
    res = []
    for line in stderr.splitlines():
        if line.startswith("chat: turn "):
            w = line.split()
            res.append((int(w[3]), int(w[8]), int(w[13])))
    return res


def lcp(a, b):
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


# ---- piped stdin: one reply per line, nothing else on stdout ----
N = "24"
rc, one, err1 = pipe(["Hello"], "-n", N)
check(rc == 0, "one piped turn exits 0 (%d: %s)" % (rc, err1))
check(one.strip() != "", "one piped turn prints a reply")
check(err1 == "", "piped mode without --verbose prints nothing on stderr: %r" % err1)
check("> " not in one[:2] and "quarrel chat" not in one, "piped mode prints no prompt or banner")

# the reply is llama.cpp's greedy continuation of the chatml prompt (chat_stories260K_ref.json,
# made with the peer), up to the first step whose top-2 logits are within the tolerance
prompt1 = chatml([{"role": "user", "content": "Hello"}])
ref = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                  "chat_stories260K_ref.json")))
check(ref["prompt"] == prompt1, "the reference's prompt is the hand-rendered chatml")
check(ref["prompt_tokens"] == tokens(prompt1), "the prompt tokenizes as llama.cpp tokenizes it")
expect = b""
for k, h in enumerate(ref["greedy_pieces_hex"]):
    if ref["gap12"][k] <= ref["tolerance_abs_logit"]:
        break
    expect += bytes.fromhex(h)
check(len(expect) > 20 and one.encode().startswith(expect),
      "chat's first reply %r starts with llama.cpp's %r" % (one, expect))

# and it equals `quarrel run` on the same prompt stopped at <|im_end|>
r = subprocess.run([Q, "run", "-m", M, "-p", prompt1, "-n", N, "--temp", "0", "-t", "1",
                    "--stop", "<|im_end|>"], capture_output=True, text=True, timeout=60)
check(r.returncode == 0 and r.stdout.startswith(prompt1), "run on the chatml prompt")
check(r.stdout[len(prompt1):] == one, "chat's first reply %r equals run's continuation of the "
      "chatml prompt %r" % (one, r.stdout[len(prompt1):]))

rc, two, err2 = pipe(["Hello", "Where is the cat?"], "-n", N, "--verbose")
check(rc == 0, "two piped turns exit 0")
check(two.startswith(one) and two[len(one):].strip() != "",
      "two piped lines give the first reply then a second one: %r" % two)
check(err2.count("chat: reply:") == 2, "two replies reported: %r" % err2)

# ---- KV reuse: the second turn evaluates only its new tokens ----
counts = turn_counts(err2)
if check(len(counts) == 2, "two verbose turn lines: %r" % err2):
    (n1, r1, e1), (n2, r2, e2) = counts
    reply1 = one[:-1]  # the reply, without the newline printed after it
    conv1 = [{"role": "user", "content": "Hello"}]
    conv2 = conv1 + [{"role": "assistant", "content": reply1},
                     {"role": "user", "content": "Where is the cat?"}]
    t1, t2 = tokens(chatml(conv1)), tokens(chatml(conv2))
    check((n1, r1, e1) == (len(t1), 0, len(t1)), "turn 1 evaluates the whole prompt: %r vs %d"
          % (counts[0], len(t1)))
    check(n2 == len(t2), "turn 2 conversation is %d tokens, expected %d" % (n2, len(t2)))
    # the cache held turn 1's prompt and reply: what is new is what follows their common
    # prefix with the re-rendered conversation
    held = tokens(chatml(conv1) + reply1)
    expect_new = len(t2) - lcp(t2, held)
    check(r2 >= len(t1), "turn 2 reuses at least turn 1's prompt (%d < %d)" % (r2, len(t1)))
    check(e2 == n2 - r2, "evaluated + reused = conversation in turn 2")
    check(e2 == expect_new, "turn 2 evaluates %d tokens, the new suffix is %d" % (e2, expect_new))
    check(e2 < len(t2) - len(t1), "turn 2 evaluates less than the whole conversation")

# ---- commands in piped mode: /save, /load, /clear ----
conv = os.path.join(TMP, "conv.json")
rc, out, err = pipe(["Hello", "Where is the cat?", "/save " + conv], "-n", N)
check(rc == 0, "/save run exits 0")
check(out == two, "/save run replies as before")
try:
    saved = json.load(open(conv))
    msgs = saved["messages"]
    check([m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"],
          "saved roles: %r" % msgs)
    check(msgs[0]["content"] == "Hello" and msgs[2]["content"] == "Where is the cat?",
          "saved user turns")
    check(msgs[1]["content"] + "\n" + msgs[3]["content"] + "\n" == two,
          "saved replies are the printed ones")
except (OSError, ValueError, KeyError, TypeError) as ex:
    check(False, "/save wrote valid JSON messages: %s" % ex)
    msgs = []

# /load in a fresh process: the conversation continues (the whole of it is evaluated, the
# cache being empty), and the reply equals continuing in the first process
rc, three, err = pipe(["Hello", "Where is the cat?", "Go on"], "-n", N, "--verbose")
check(rc == 0, "three turns")
rc, loaded, errl = pipe(["/load " + conv, "Go on", "/save " + conv + ".2"], "-n", N,
                        "--verbose")
check(rc == 0 and "(loaded 4 messages" in errl, "/load reports the messages: %r" % errl)
check(three.startswith(two) and loaded == three[len(two):],
      "after /load the reply %r continues the conversation like %r" % (loaded, three[len(two):]))
cl = turn_counts(errl)
check(len(cl) == 1 and cl[0][1] == 0 and cl[0][2] == cl[0][0] and
      cl[0][0] == turn_counts(err)[2][0],
      "after /load in a fresh process the whole conversation is evaluated: %r" % cl)
try:
    m2 = json.load(open(conv + ".2"))["messages"]
    check(len(m2) == 6 and m2[:4] == msgs and m2[4]["content"] == "Go on",
          "/save after /load holds the loaded turns and the new one")
except (OSError, ValueError, KeyError, TypeError) as ex:
    check(False, "second /save: %s" % ex)

# /clear: the next turn starts from nothing and replies as a first turn does
rc, out, err = pipe(["Where is the cat?", "/clear", "Hello"], "-n", N, "--verbose")
c = turn_counts(err)
check(rc == 0 and "(conversation cleared)" in err, "/clear reports")
check(len(c) == 2 and c[1] == (len(tokens(prompt1)), 0, len(tokens(prompt1))),
      "after /clear the turn is a first turn: %r" % c)
check(out.endswith(one), "after /clear the reply is the first-turn reply")

# --system: the system message is rendered first, and kept by /clear
rc, out, err = pipe(["Hello", "/clear", "Hello"], "-n", N, "--verbose", "--system", "Be brief.")
sys_prompt = chatml([{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hello"}])
c = turn_counts(err)
check(rc == 0 and len(c) == 2 and c[0][0] == len(tokens(sys_prompt)) and c[1][0] == c[0][0],
      "--system is rendered and survives /clear: %r" % c)

# a built-in template by name: llama2 has no end-of-turn text after the reply but </s>
rc, out, err = pipe(["Hello"], "-n", "8", "--verbose", "--chat-template", "llama2")
check(rc == 0 and "template llama2, end of turn '</s>'" in err, "--chat-template llama2: %r" % err)
# a Jinja file
tpl = os.path.join(TMP, "t.jinja")
with open(tpl, "w") as f:
    f.write("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant]{% endif %}")
rc, out, err = pipe(["Hello", "Again"], "-n", "8", "--verbose", "--chat-template", tpl)
c = turn_counts(err)
check(rc == 0 and len(c) == 2 and c[0][0] == len(tokens("[user] Hello\n[assistant]")),
      "--chat-template FILE is rendered: %r / %r" % (c, err))
check(len(c) == 2 and c[1][1] >= c[0][0], "KV reuse with a Jinja template: %r" % c)

# ---- errors ----
def expect_err(args, lines, code, msg, what):
    rc, out, err = pipe(lines, *args)
    check(rc == code and msg in err, "%s: exit %d, stderr %r (expected %d, %r)"
          % (what, rc, err, code, msg))
    return out, err


expect_err(["--bogus"], [], 2, "unknown option '--bogus'", "unknown option")
expect_err(["-n", "x"], [], 2, "-n expects an integer", "bad -n")
expect_err(["--system"], [], 2, "--system needs a value", "missing value")
expect_err(["--chat-template", "nosuchfamily"], [], 1,
           "'nosuchfamily' is neither a readable file nor a built-in template name",
           "unknown template name")
bad = os.path.join(TMP, "bad.jinja")
with open(bad, "w") as f:
    f.write("{% for m in messages %}{{ m.content }")
expect_err(["--chat-template", bad], [], 1, "the chat template does not render", "bad Jinja")
empty = os.path.join(TMP, "empty.jinja")
open(empty, "w").close()
expect_err(["--chat-template", empty], [], 1, "is empty", "empty template file")
expect_err(["-m", os.path.join(TMP, "nope.gguf")], [], 1, "quarrel: model", "missing model")

notjson = os.path.join(TMP, "notjson")
with open(notjson, "w") as f:
    f.write("{not json")
badrole = os.path.join(TMP, "badrole.json")
with open(badrole, "w") as f:
    json.dump({"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
              f)
nocontent = os.path.join(TMP, "nocontent.json")
with open(nocontent, "w") as f:
    json.dump([{"role": "user"}], f)
noarray = os.path.join(TMP, "noarray.json")
with open(noarray, "w") as f:
    json.dump({"msgs": []}, f)
for cmd, msg in [("/load " + os.path.join(TMP, "missing.json"), "cannot open"),
                 ("/load " + notjson, "is not valid JSON"),
                 ("/load " + badrole, "message 1 of '%s' has role 'robot'" % badrole),
                 ("/load " + nocontent, "message 0 of '%s' needs string" % nocontent),
                 ("/load " + noarray, "holds neither a \"messages\" array"),
                 ("/load", "/load needs a file name"),
                 ("/save /nonexistent-dir/x.json", "cannot write '/nonexistent-dir/x.json'"),
                 ("/frobnicate", "unknown command '/frobnicate'")]:
    # the REPL reports the problem and goes on: the turn after it gets its reply
    out, err = expect_err(["-n", N], [cmd, "Hello"], 0, msg, cmd)
    check(out == one, "%s: the REPL goes on with the next turn" % cmd)
# a failed /load leaves the conversation as it was
rc, out, err = pipe(["Hello", "/load " + badrole, "Where is the cat?"], "-n", N)
check(out == two, "a failed /load keeps the conversation")

# context full: the turn is refused with a message, /clear recovers
out, err = expect_err(["-n", "8", "-c", "64", "--verbose"],
                      ["Hello", "Tell me a long story about a cat and a dog", "/clear", "Hello"],
                      0, "context full", "conversation over the context")
check("/clear" in err and len(turn_counts(err)) == 2, "context full offers /clear and the REPL "
      "goes on: %r" % err)
# context full during a reply
out, err = expect_err(["-n", "-1", "--ignore-eos", "-c", "64", "--verbose"], ["Hello"], 0,
                      "context full (64 tokens): the reply is cut short", "reply over the context")


# ---- a pseudo-terminal: prompt, turns, commands, Ctrl-C ----
class Pty:
    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(Q, [Q] + BASE + list(args))
        self.buf = b""

    def until(self, pat, timeout=60):
        """Read until `pat` (bytes); returns what came before it and drops both."""
        end = time.time() + timeout
        while pat not in self.buf:
            left = end - time.time()
            r = select.select([self.fd], [], [], max(0, left))[0] if left > 0 else []
            if not r:
                raise TimeoutError("waited %ds for %r; got %r" % (timeout, pat, self.buf[-400:]))
            try:
                d = os.read(self.fd, 4096)
            except OSError:
                d = b""
            if not d:
                raise EOFError("output ended before %r; got %r" % (pat, self.buf[-400:]))
            self.buf += d
        i = self.buf.index(pat)
        before, self.buf = self.buf[:i], self.buf[i + len(pat):]
        return before

    def read_more(self, n, timeout=60):
        """Wait until at least n more bytes have come."""
        want = len(self.buf) + n
        end = time.time() + timeout
        while len(self.buf) < want:
            left = end - time.time()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError("waited %ds for %d bytes; got %r" % (timeout, n, self.buf[-400:]))
            d = os.read(self.fd, 4096)
            if not d:
                raise EOFError("output ended; got %r" % self.buf[-400:])
            self.buf += d

    def editing(self, timeout=30):
        """Wait until libedit has the terminal (ICANON off): it prints the prompt before it
        switches, and an end-of-file typed in between is taken by the line discipline."""
        end = time.time() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.time() > end:
                raise TimeoutError("the terminal never left canonical mode")
            time.sleep(0.02)

    def send(self, s):
        os.write(self.fd, s)

    def wait(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            try:  # drain so the child never blocks on a full pty
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.buf += os.read(self.fd, 4096)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        return None


def pty_session(name, fn, *args):
    p = Pty(*args)
    try:
        fn(p)
    except (TimeoutError, EOFError) as ex:
        check(False, "%s: %s" % (name, ex))
        if p.wait(1) is None:
            pass


def turns_and_commands(p):
    p.until(b"/help for commands")
    p.until(b"> ")
    p.send(b"Hello\r")
    r1 = p.until(b"> ").decode("utf-8", "replace").replace("\r\n", "\n")
    # the terminal echoes the line, then the reply follows
    check(r1.startswith("Hello\n") and one.strip() in r1, "pty turn 1 reply: %r" % r1)
    p.send(b"Where is the cat?\r")
    r2 = p.until(b"> ").decode("utf-8", "replace").replace("\r\n", "\n")
    check(two[len(one):].strip() in r2, "pty turn 2 reply: %r" % r2)
    save = os.path.join(TMP, "pty.json").encode()
    p.send(b"/save " + save + b"\r")
    r3 = p.until(b"> ")
    check(b"(saved 4 messages" in r3, "pty /save: %r" % r3)
    p.send(b"/clear\r")
    check(b"(conversation cleared)" in p.until(b"> "), "pty /clear")
    p.send(b"Hello\r")
    r4 = p.until(b"> ").decode("utf-8", "replace")
    check("chat: turn 3: %d tokens in the conversation, 0 reused" % len(tokens(prompt1)) in r4,
          "pty: after /clear the turn starts afresh: %r" % r4)
    p.send(b"/load " + save + b"\r")
    check(b"(loaded 4 messages" in p.until(b"> "), "pty /load")
    p.send(b"Go on\r")
    r5 = p.until(b"> ").decode("utf-8", "replace").replace("\r\n", "\n")
    check(three[len(two):].strip() in r5, "pty: the loaded conversation continues: %r" % r5)
    # history: up-arrow brings back the last line
    p.send(b"\x1b[A")
    p.until(b"Go on")  # libedit redraws the line with the recalled text
    p.send(b"\r")
    r6 = p.until(b"chat: reply:").decode("utf-8", "replace")
    check("chat: turn 5:" in r6, "pty: up-arrow recalls the last line: %r" % r6)
    p.until(b"> ")
    # non-ASCII input arrives intact (libedit decodes it as UTF-8)
    p.send("Où est le chat? 猫\r".encode())
    p.until(b"chat: reply:")
    p.until(b"> ")
    p.send(b"/save " + save + b".utf8\r")
    p.until(b"> ")
    p.send(b"/exit\r")
    check(p.wait() == 0, "pty /exit exits 0")
    try:
        m = json.load(open(save + b".utf8"))["messages"]
        check(m[-2]["content"] == "Où est le chat? 猫", "pty UTF-8 input: %r" % m[-2:])
    except (OSError, ValueError, KeyError) as ex:
        check(False, "pty UTF-8 /save: %s" % ex)
    try:
        check(json.load(open(save))["messages"][0]["content"] == "Hello", "pty /save wrote JSON")
    except (OSError, ValueError, KeyError) as ex:
        check(False, "pty /save file: %s" % ex)


pty_session("pty turns and commands", turns_and_commands, "-n", N, "--verbose")


def ctrl_c(p):
    p.until(b"> ")
    p.send(b"Hello\r")
    p.until(b"chat: turn 1:")
    # let it generate a while, then interrupt; without the interrupt it would run to the
    # end of the 4096-token context
    p.until(b"\n")
    p.read_more(300)
    p.send(b"\x03")
    r = p.until(b"> ", 60).decode("utf-8", "replace")
    check("(reply stopped)" in r and "(interrupted)" in r, "Ctrl-C stops the reply: %r" % r[-300:])
    check("context full" not in r, "the reply was interrupted, not cut by the context")
    # the REPL goes on: the next line gets a reply
    p.send(b"Hi\r")
    p.until(b"chat: turn 2:")
    p.until(b"\n")
    p.read_more(100)
    p.send(b"\x03")
    check(b"(interrupted)" in p.until(b"> ", 60), "second reply interrupted")
    # Ctrl-C at the prompt: a hint, then a second one quits
    p.send(b"\x03")
    check(b"Ctrl-C again to quit" in p.until(b"> ", 30), "Ctrl-C at the prompt gives a hint")
    p.send(b"\x03")
    check(p.wait() == 0, "a second Ctrl-C at the prompt exits 0")


# two threads: the context's worker must not swallow the SIGINT
pty_session("pty Ctrl-C", ctrl_c, "-n", "-1", "--ignore-eos", "-c", "4096", "--verbose", "-t", "2")


def ctrl_d(p):
    p.until(b"> ")
    p.editing()
    p.send(b"\x04")
    check(p.wait() == 0, "Ctrl-D at the prompt exits 0")


pty_session("pty Ctrl-D", ctrl_d)

if failures:
    print("%d check(s) failed" % len(failures), file=sys.stderr)
    sys.exit(1)
print("chat: all checks passed")
