"Prompt parsing, token positions and P2P mappers, including the errors users hit."
import pytest
import torch

from dpl_nb.prompts import (check_length, encode_prompts, parse_prompt, refinement_mapper, replacement_mapper,
                            tokenize_prompts, word_positions)


@pytest.mark.parametrize("prompt, message", [
    ("a {cat", "not closed"), ("a cat}", "has no '{'"), ("a {} and a {dog}", "empty braces"),
    ("a {  }", "empty braces"), ("a {big cat}", "one word"), ("a {{cat}}", "not closed"), ("}{", "has no '{'"),
])
def test_bad_braces(prompt, message):
    with pytest.raises(ValueError, match=message):
        parse_prompt(prompt)


def test_non_string_prompt():
    with pytest.raises(ValueError, match="must be a string"):
        parse_prompt(["a {cat}"])


def test_prompt_over_77_tokens(bundle):
    long = "a " + "zebra " * 15  # 5 pieces each: 77 + tokens
    with pytest.raises(ValueError, match="at most 77"):
        parse_prompt("a {cat} " + long, bundle.tokenizer)
    with pytest.raises(ValueError, match="at most 77"):
        encode_prompts(bundle, long)
    assert check_length(bundle.tokenizer, "a " * 75) == 77  # exactly at the limit is fine


def test_positions(bundle):
    tok = bundle.tokenizer
    p = parse_prompt("{a} {zebra}; the {cat}, the {cat}!", tok)
    assert p.text == "a zebra; the cat, the cat!"
    assert p.positions == [[1], [2, 3, 4, 5, 6], [9], [12]]
    assert word_positions(tok, p.text, "cat") == [9, 12]
    with pytest.raises(ValueError, match="not in the prompt"):
        word_positions(tok, p.text, "tiger")


def test_tokenize_pads_to_77(bundle):
    ids = tokenize_prompts(bundle.tokenizer, ["a {cat}", "a dog and a tiger"])
    assert ids.shape == (2, 77) and ids.dtype == torch.long


def test_replacement_mapper_different_token_counts(bundle):
    tok = bundle.tokenizer
    R = replacement_mapper(tok, "a cat and a dog", "a zebra and a zebra")
    assert R.shape == (77, 77)
    assert (R.sum(0) > 0).all()
    assert torch.allclose(R[5, 9:14], torch.full((5,), 0.2))  # second swap lands after the first one's shift
    assert R[6, 14] == 1  # end token meets end token
    with pytest.raises(ValueError, match="same number of words"):
        replacement_mapper(tok, "a cat", "a big cat")


def test_refinement_mapper(bundle):
    mapper, alphas = refinement_mapper(bundle.tokenizer, "a {cat}", "a red cat")
    assert mapper[:5].tolist() == [0, 1, 0, 2, 3] and alphas[:5].tolist() == [1, 1, 0, 1, 1]
