"""Word units, the rows of --level word and of every top list: the table and the top list
read the same units (a newline token is its own), a repeated word is named WORD#N as a query
names it, and the JSON gives each token's exact source text."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from attn_cli.cli import app

runner = CliRunner()


def test_whitespace_tokens_are_units_of_their_own_so_table_and_top_list_agree():
    """SmolLM2's chat template puts a newline token before the user's first word: the top list
    must give "Who" the weight the table gives its token, not the newline's added to it."""
    args = ["inspect", "Who wrote Hamlet?", "-q", "Hamlet", "--chat", "-m", "smollm2", "--json", "--head", "all", "-k", "50"]
    doc = json.loads(runner.invoke(app, args).stdout)
    who = next(t["index"] for t in doc["tokens"] if t["text"] == "Who")
    assert doc["tokens"][who - 1]["source"] == "\n" and doc["tokens"][who - 1]["word"] is None
    for head in doc["layers"][0]["heads"]:
        entry = next(w for w in head["top"] if w["text"] == "Who")
        assert entry["token_indices"] == [who] and entry["weight"] == head["weights"][who]
        assert all(w["text"] and w["label"] for w in head["top"])
    units = json.loads(runner.invoke(app, [*args, "--level", "word"]).stdout)["units"]
    assert {"text": "Who", "label": "Who", "token_indices": [who], "word": doc["tokens"][who]["word"], "special": False} in units
    assert {"text": "↵", "label": f"↵@{who - 1}", "token_indices": [who - 1], "word": None, "special": False} in units


def test_screen_top_list_reads_the_table_s_weight_for_a_word_after_a_newline():
    out = runner.invoke(app, ["inspect", "Who wrote Hamlet?", "-q", "Hamlet", "--chat", "-m", "smollm2", "--head", "3", "-k", "9"]).output
    row = next(line for line in out.splitlines() if line.split()[1:2] == ["Who"])
    top = next(line for line in out.splitlines() if line.startswith("Top-attended:"))
    weight = float(row.split()[4])
    listed = dict(item.rsplit(" ", 1) for item in top.removeprefix("Top-attended: ").split(" · "))
    assert abs(float(listed["Who"]) - weight) <= 0.006, (row, top)


def test_repeated_words_carry_their_occurrence_in_top_lists():
    text = "def fibonacci(n): return fibonacci(n - 1)"
    doc = json.loads(runner.invoke(app, ["inspect", text, "-q", "return", "--json", "--head", "mean", "-k", "30"]).stdout)
    labels = {w["label"]: w for w in doc["layers"][0]["heads"][-1]["top"]}
    assert {"fibonacci#1", "fibonacci#2", "(#1", "(#2", "n#1", "n#2"} <= set(labels)
    second = runner.invoke(app, ["inspect", text, "-q", "fibonacci#2", "--json"])
    assert json.loads(second.stdout)["query"]["token_indices"] == labels["fibonacci#2"]["token_indices"]
    out = runner.invoke(app, ["inspect", text, "-q", "return", "--head", "mean", "-k", "30"]).output
    assert "fibonacci#1" in out and "fibonacci#2" in out


def test_tokens_view_shows_no_empty_word_and_json_gives_the_source():
    text = "Hi\n\nthere  friend"
    out = runner.invoke(app, ["tokens", text, "-m", "smollm2"]).output
    assert "(space)" in out
    doc = json.loads(runner.invoke(app, ["tokens", text, "-m", "smollm2", "--json"]).stdout)
    assert all(w["text"] == text[w["start"] : w["end"]] and w["text"].strip() == w["text"] != "" for w in doc["words"])
    assert "".join(t["source"] for t in doc["tokens"]) == text
    assert [t["text"] for t in doc["tokens"] if t["word"] is None] == [t["text"] for t in doc["tokens"] if not t["source"].strip()]


def test_csv_word_column_is_the_words_a_token_covers():
    csv = runner.invoke(app, ["inspect", "猫坐在垫子上。", "-q", "猫", "-m", "gemma3", "--format", "csv"]).stdout.splitlines()
    rows = [line.split(",") for line in csv[1:]]
    assert [(r[4], r[5]) for r in rows if r[1] == "0"] == [("<bos>", ""), ("猫", "猫"), ("坐在", "坐在"), ("垫", "垫"), ("子上", "子上"), ("。", "。")]


def test_generate_names_a_repeated_prompt_word_it_attended_to():
    from attn_cli.compute.generate import generate
    from attn_cli.loading.model import load_model

    result = generate(load_model("smollm2"), "the cat saw the dog and the", 3)
    for step in result.steps:
        a = step.attended
        unit = next((u for u in result.tokenization.word_units if u.token_indices == a.token_indices), None)
        if unit is not None and unit.word is not None and a.token_indices[-1] < result.prompt_tokens:
            assert a.label == unit.label and a.text == unit.text
    doc = result.to_json()
    assert all(s["attended"]["label"] for s in doc["steps"])
    labels = [s.attended.label for s in result.steps]
    assert any("#" in label for label in labels) or not any(s.attended.text == "the" for s in result.steps), labels
