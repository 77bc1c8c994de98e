import pytest

from stance.segment import segment


def texts(doc: str) -> list[str]:
    return [s.text for s in segment(doc)]


def test_offsets_point_at_the_text():
    doc = "First line here.\n\nSecond: “A quote. Another one.” he said.\n"
    for s in segment(doc):
        assert doc[s.start:s.end] == s.text


def test_honorifics_and_abbreviations_do_not_split():
    assert texts("My hon. Friend raises an extremely serious issue. I agree.") == [
        "My hon. Friend raises an extremely serious issue.", "I agree."]
    assert texts("Ms Phillips met Dr. Jones and Mr. Smith, e.g. at the office. Then she left.") == [
        "Ms Phillips met Dr. Jones and Mr. Smith, e.g. at the office.", "Then she left."]


def test_curly_and_straight_quotes_open_and_close_sentences():
    doc = "“There is no place for it. We use technology to remove it.”\n\"For far too long. Enough.\""
    assert texts(doc) == ["“There is no place for it.", "We use technology to remove it.”",
                          "\"For far too long.", "Enough.\""]


def test_timestamps_party_and_constituency_lines_stay_apart():
    doc = "Lab\nGregor Poynton\nLivingston\n\u00a015:10:10\nJess Phillips\nThere is nothing more important."
    assert texts(doc) == ["Lab", "Gregor Poynton", "Livingston", "15:10:10", "Jess Phillips",
                          "There is nothing more important."]


def test_headings_bylines_credits_and_read_more_are_their_own_sentences():
    doc = ("MP claims Facebook risks becoming a ‘safe haven’\n\n-Credit: (Image: Reach Publishing Services Limited)\n"
           "READ MORE: Jaguar boss slams advert\nMeta has been approached for comment.")
    assert texts(doc) == ["MP claims Facebook risks becoming a ‘safe haven’",
                          "-Credit: (Image: Reach Publishing Services Limited)",
                          "READ MORE: Jaguar boss slams advert", "Meta has been approached for comment."]


def test_numbered_question_keeps_its_number():
    assert texts("11. What steps her Department is taking to help keep children safe online.") == [
        "11. What steps her Department is taking to help keep children safe online."]


def test_one_line_paragraphs_and_blank_text():
    assert texts("One.\nTwo\n\n\nThree.") == ["One.", "Two", "Three."]
    assert segment("   \n\n ") == []
    with pytest.raises(TypeError):
        segment(None)  # type: ignore[arg-type]


def test_the_fast_path_for_single_sentence_lines_changes_nothing(monkeypatch):
    import re

    from stance import paths
    from stance import segment as segment_module
    from stance.data.loaders import challenge_rows, supplement_rows
    from stance.evaluation.behavioural import build_cases

    documents = [p.read_text(encoding="utf-8") for p in sorted(paths.seeds_dir().glob("*.txt"))]
    documents += [r["text"] for r in supplement_rows() + challenge_rows()]
    documents += [text for case in build_cases() for text in case.texts]
    documents += ["Dr. Who said no. Then he left", "It costs $2.5m… Really", "Ends with an ellipsis…",
                  "“Quoted.” Next one", "U.S. officials met (briefly.) Later they spoke"]
    fast = [segment(doc) for doc in documents]
    monkeypatch.setattr(segment_module, "_CANDIDATE_END", re.compile(""))  # every line goes through pysbd
    monkeypatch.setattr(segment_module, "_SAFE_END", re.compile(r"(?!)"))  # and is never cut before it
    assert [segment(doc) for doc in documents] == fast


def test_safe_cuts_keep_closing_quotes_and_abbreviations():
    line = "He said it was “a backdoor.” Ministers disagree. Mr. Smith, e.g. Dr. Jones, etc. They voted."
    assert texts(line) == ["He said it was “a backdoor.”", "Ministers disagree.",
                           "Mr. Smith, e.g. Dr. Jones, etc. They voted."]


# --- issue 17: robust, linear-time segmentation -------------------------------------------------

import random  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from stance import segment as segment_module  # noqa: E402
from stance.text import has_visible_text  # noqa: E402


def whole_lines(monkeypatch, doc: str):
    """pysbd on every whole line with the project's rules: no cut before pysbd, no window."""
    with monkeypatch.context() as patch:
        patch.setattr(segment_module, "_CANDIDATE_END", re.compile(""))
        patch.setattr(segment_module, "_SAFE_END", re.compile(r"(?!)"))
        patch.setattr(segment_module, "_LOWER_END", re.compile(r"(?!)"))
        patch.setattr(segment_module, "_WINDOW", 10**9)
        return segment(doc)


def repo_texts() -> list[str]:
    from stance import paths
    from stance.data.loaders import challenge_rows, contrast_rows, contrast_test_rows, supplement_rows
    from stance.evaluation.behavioural import build_cases

    data = paths.data_dir()
    files = sorted(paths.seeds_dir().glob("*.txt"))
    files += sorted((data / "articles" / "texts").glob("*.txt")) + sorted((data / "article_test" / "texts").glob("*.txt"))
    assert len(files) > 150  # seeds and both article sets are there
    documents = [p.read_text(encoding="utf-8") for p in files]
    rows = supplement_rows() + challenge_rows() + contrast_rows() + contrast_test_rows()
    documents += [r["text"] for r in rows] + [text for case in build_cases() for text in case.texts]
    return documents


_WORDS = [*["we", "met", "the", "minister", "today", "and", "it", "was", "fine", "but", "the", "plan", "failed", "again", "since", "nobody", "read", "it"],
          *["Ofcom", "said", "scanning", "works", "Mr.", "Smith", "etc.", "e.g.", "i.e.", "al.", "s.", "no.", "vs.", "Dr.", "U.S.", "2022", "11", "it's", "don't"],
          "[2021]", "“a quoted phrase”", "\"plain quote\"", "—", "..."]


def generated_line(seed: int, size: int) -> str:
    """One long line of random words, full stops before lower- and upper-case words, quotes,
    brackets, numbers and abbreviations; the same line for the same seed."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        if rng.random() < 0.12 and word[-1:].isalpha():
            word += rng.choice(".....!?")
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def test_the_fast_path_gives_pysbds_sentences_on_every_repo_text(monkeypatch):
    documents = repo_texts()
    fast = [segment(doc) for doc in documents]
    assert [whole_lines(monkeypatch, doc) for doc in documents] == fast


@pytest.mark.slow
def test_pysbd_windows_give_pysbds_sentences_on_repo_documents_as_one_line(monkeypatch):
    documents = repo_texts()
    # each longer document as one line, through pysbd windows only: window edges fall all over
    # real text (quotes, brackets, bylines) and the sentences must not move
    # (known limit: pysbd reads straight single-quote quotations by a rule over the whole text,
    # so documents holding one are left out here; no repo line is long enough to be windowed)
    long_lines = [doc.replace("\n", " ") for doc in documents
                  if len(doc) > segment_module._WINDOW and not re.search(r"(?<!\w)'\w", doc)][::2]
    assert len(long_lines) > 30
    monkeypatch.setattr(segment_module, "_CANDIDATE_END", re.compile(""))
    monkeypatch.setattr(segment_module, "_SAFE_END", re.compile(r"(?!)"))
    monkeypatch.setattr(segment_module, "_LOWER_END", re.compile(r"(?!)"))
    assert [segment(doc) for doc in long_lines] == [whole_lines(monkeypatch, doc) for doc in long_lines]


@pytest.mark.parametrize("seed,size", [(1, 6000), (2, 12000), (3, 4000)])
def test_windows_give_pysbds_sentences_on_generated_long_lines(monkeypatch, seed, size):
    line = generated_line(seed, size)
    got = segment(line)
    assert len(got) > 20
    assert got == whole_lines(monkeypatch, line)


_UNITS = ["we met today. it was fine. ", "they sent phones, laptops etc. and more etc. ", "we met today and it was fine ",
          "We met (briefly) in 2021. it was “fine”, they said. "]


@pytest.mark.parametrize("unit", _UNITS)
def test_long_lines_give_pysbds_sentences(monkeypatch, unit):
    line = (unit * (12_000 // len(unit) + 1))[:12_000]
    assert segment(line) == whole_lines(monkeypatch, line)


@pytest.mark.slow
@pytest.mark.parametrize("unit", _UNITS)
def test_long_lines_up_to_50_kb_give_pysbds_sentences(monkeypatch, unit):
    line = (unit * (50_000 // len(unit) + 1))[:50_000]
    assert segment(line) == whole_lines(monkeypatch, line)


def pysbd_inputs(monkeypatch, doc: str) -> list[int]:
    """Lengths of the texts pysbd is given while segmenting ``doc``."""
    real = segment_module._segmenter()
    sizes: list[int] = []

    class Recorder:
        def segment(self, text):
            sizes.append(len(text))
            return real.segment(text)

    with monkeypatch.context() as patch:
        patch.setattr(segment_module, "_segmenter", lambda: Recorder())
        segment(doc)
    return sizes


def test_pysbd_only_ever_sees_bounded_windows_so_work_is_linear(monkeypatch):
    # quotes and digits keep the lower-case cuts off: the whole line goes through pysbd windows
    line = generated_line(7, 60_000)
    sizes = pysbd_inputs(monkeypatch, line)
    assert max(sizes) <= segment_module._WINDOW
    assert sum(sizes) < 2.5 * len(line)  # overlap is bounded: each character is read about twice at most
    # the lower-case line and the abbreviation line of the issue skip pysbd almost entirely
    assert sum(pysbd_inputs(monkeypatch, "we met today. it was fine. " * 2000)) == 0
    assert sum(pysbd_inputs(monkeypatch, "they sent phones etc. and laptops etc. " * 2000)) == 0


def test_time_per_character_stays_flat_on_a_long_lower_case_line():
    def seconds(text):
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            segment(text)
            best = min(best, time.perf_counter() - started)
        return best

    for unit in ["we met today. it was fine. ", "they sent phones etc. and laptops etc. "]:
        small, large = (unit * 800), (unit * 8000)
        # linear time gives 10x; a quadratic segmenter gives 100x
        assert seconds(large) < 25 * seconds(small)


def test_abbreviations_before_a_bracket_digit_or_lower_case_word_do_not_end_a_sentence():
    assert texts("Levy and Robinson et al. [2022] argue that scanning fails.") == [
        "Levy and Robinson et al. [2022] argue that scanning fails."]
    assert texts("The duty is in the Act (s. (122)) and applies now.") == [
        "The duty is in the Act (s. (122)) and applies now."]
    assert texts("See vol. 3 of the report. It is long.") == ["See vol. 3 of the report.", "It is long."]
    # a plain word still ends its sentence before a lower-case one, as pysbd says
    assert texts("we met today. it was fine.") == ["we met today.", "it was fine."]


def test_no_sentence_is_only_punctuation_or_invisible():
    doc = "Hello there.\n...\n—\n* * *\n\u200b\u2060\ufeff\u00ad\u200e\u200f\nBye. ...\n"
    assert texts(doc) == ["Hello there.", "Bye."]
    assert segment("\u200b\n\u2060\u200b") == []


def test_separator_controls_never_raise_and_offsets_stay_exact():
    for sep in "\x1c\x1d\x1e\x1f\x0b\x0c\x85\u2028\u2029":
        doc = f"Clause{sep}1. The provider shall scan."
        got = segment(doc)
        assert [s.text for s in got][-1] == ("The provider shall scan." if sep == "\x1f" else "1. The provider shall scan.")
        assert all(doc[s.start : s.end] == s.text for s in got)
    # \x1f is whitespace (one line); the others are line breaks
    assert texts("Clause\x1f1. The provider shall scan.") == ["Clause\x1f1.", "The provider shall scan."]
    assert texts("Clause\x1e1. The provider shall scan.") == ["Clause", "1. The provider shall scan."]


def test_lone_cr_crlf_and_lf_files_give_the_same_sentences():
    lines = ["Ministers back scanning plan", "By Jane Doe", "The plan was announced today.",
             "Critics say it breaks encryption."]
    results = [segment(sep.join(lines) + sep) for sep in ("\n", "\r\n", "\r")]
    assert [s.text for s in results[0]] == lines
    assert [[s.text for s in r] for r in results] == [lines] * 3
    for sep, result in zip(("\n", "\r\n", "\r"), results):
        doc = sep.join(lines) + sep
        assert all(doc[s.start : s.end] == s.text for s in result)


def check_sentences(doc: str) -> None:
    got = segment(doc)
    previous_end = 0
    for s in got:
        assert doc[s.start : s.end] == s.text
        assert previous_end <= s.start < s.end
        assert has_visible_text(s.text) and s.text == s.text.strip()
        previous_end = s.end


def test_odd_inputs_segment_without_raising():
    for doc in ["x \ud83d", "\ud83d. \udc00. Ok.", "\x00\x00. \x00", "∯ȸ♨☝✂⎋ᓰ. &ᓴ& Next.", "a" * 5000 + ". b",
                "." * 3000, "( " * 3000 + "x. y", "\" '" * 2000 + "Hi. there", "1. 2. 3. 4." * 500]:
        check_sentences(doc)


settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])

_PIECES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\n", "\r", "\r\n", "\x1c", "\x1f", "\x0b", "\u2028", "\x85", "\x00", "\ud83d", "\u200b",
                     ". ", "etc. ", "al. [", "s. (", "Mr. ", " 1. ", "“", "”", "\"", "'", "(", ")", "...", "—",
                     "we met today. it was fine. ", "The Act. It says.", "∯", "&ᓴ&"]),
)


@settings(settings.get_profile("ci"))
@given(st.lists(_PIECES, max_size=40), st.integers(min_value=0, max_value=3))
def test_any_text_segments_with_exact_ordered_visible_sentences(pieces, repeat):
    doc = "".join(pieces)
    check_sentences(doc)
    check_sentences(doc * (1 + repeat * 60))  # long lines take the windowed path
