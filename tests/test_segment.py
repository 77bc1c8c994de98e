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
