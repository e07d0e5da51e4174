import numpy as np
import pytest

from qa.embed import TokenStates
from qa.span_net import (
    FLOOR,
    LAST_LAYER_FILE,
    MIDDLE_LAYER_FILE,
    SpanNet,
    SpanNetEnsemble,
    SpanScores,
    load_span_net,
    load_span_nets,
    question_word_marks,
    real_tokens,
)


def test_numpy_forward_matches_the_torch_network_it_was_trained_as():
    torch = pytest.importorskip("torch")
    from qa.fit_span_net import Example, batch_tensors, network

    torch.manual_seed(1)
    net = network()(12).eval()
    rng = np.random.default_rng(0)
    rows = []
    for length, text in ((5, "alpha beta gamma delta epsilon"), (3, "beta gamma delta")):
        offsets = np.array([[6 * k, 6 * k + 5] for k in range(length)])
        passage = TokenStates(rng.normal(size=(length, 12)).astype(np.float32), offsets)
        question = TokenStates(rng.normal(size=(4, 12)).astype(np.float32), np.array([[0, 4], [5, 9], [10, 14], [15, 19]]))
        marks = question_word_marks(text, offsets, {"gamma"})
        rows.append(Example(passage, question, "what gamma", marks, text, 0, 0, ["x"]))
    with torch.no_grad():
        start, end = net(*batch_tensors(rows))
    ported = SpanNet({k: v.numpy() for k, v in net.state_dict().items()})
    for b, row in enumerate(rows):
        scores = ported.scores(row.question, "what gamma", [row.passage], [row.context])[0]
        n = len(row.passage.offsets)
        np.testing.assert_allclose(scores.start, torch.log_softmax(start[b, :n], 0).numpy(), atol=1e-4)
        np.testing.assert_allclose(scores.end, torch.log_softmax(end[b, :n], 0).numpy(), atol=1e-4)


def test_a_batch_of_passages_scores_each_as_if_alone():
    net = load_span_net(str(LAST_LAYER_FILE))
    rng = np.random.default_rng(2)
    dim = net.w["proj.weight"].shape[1]

    def states(n):
        return TokenStates(rng.normal(size=(n, dim)).astype(np.float32), np.array([[2 * k, 2 * k + 1] for k in range(n)]))

    question, short, long = states(3), states(4), states(9)
    together = net.scores(question, "q", [short, long], ["a b c d", "a b c d e f g h i"])
    for alone, passage, text in ((together[0], short, "a b c d"), (together[1], long, "a b c d e f g h i")):
        single = net.scores(question, "q", [passage], [text])[0]
        np.testing.assert_allclose(alone.start, single.start, atol=1e-5)
        np.testing.assert_allclose(alone.end, single.end, atol=1e-5)


def test_a_passage_without_text_tokens_scores_nothing_and_breaks_nothing():
    net = load_span_net(str(LAST_LAYER_FILE))
    dim = net.w["proj.weight"].shape[1]
    special_only = TokenStates(np.zeros((2, dim), np.float32), np.array([[0, 0], [0, 0]]))
    words = TokenStates(np.ones((3, dim), np.float32), np.array([[0, 1], [2, 3], [4, 5]]))
    empty, scored = net.scores(words, "a b", [special_only, words], ["", "a b c"])
    assert len(empty.start) == 0 and empty.span(0, 1) == FLOOR and empty.best()[0] == FLOOR
    assert np.exp(scored.start).sum() == pytest.approx(1.0, abs=1e-5)


def test_span_lookup_uses_the_tokens_covering_the_characters():
    offsets = np.array([[0, 3], [4, 9], [9, 12], [13, 17]])  # "The Brook lyn team"
    scores = SpanScores(offsets, np.log(np.array([0.1, 0.6, 0.2, 0.1])), np.log(np.array([0.1, 0.1, 0.7, 0.1])))
    assert scores.span(4, 12) == pytest.approx(np.log(0.6) + np.log(0.7))
    assert scores.span(0, 3) == pytest.approx(np.log(0.1) + np.log(0.1))
    assert scores.span(20, 25) == FLOOR  # past the last token the network read
    assert scores.best() == (pytest.approx(np.log(0.6) + np.log(0.7)), 4, 12)


def test_question_words_are_marked_by_whole_word_and_special_tokens_are_dropped():
    text = "Tesla built the engine in Smiljan"
    offsets = np.array([[0, 0], [0, 5], [6, 11], [12, 15], [16, 22], [23, 25], [26, 29], [29, 33], [0, 0]])
    states = real_tokens(TokenStates(np.zeros((9, 2), np.float32), offsets))
    assert len(states.offsets) == 7
    marks = question_word_marks(text, states.offsets, {"smiljan", "engine"})[:, 0]
    assert marks.tolist() == [0, 0, 0, 1, 0, 1, 1]


def test_the_shipped_weights_are_the_small_files_the_answerer_loads():
    last, middle = load_span_nets().nets
    for path, net in ((LAST_LAYER_FILE, last), (MIDDLE_LAYER_FILE, middle)):
        assert path.stat().st_size < 2_000_000
        assert net.layers == 2
    # the second reads each token's middle-layer vector after its last-layer one
    assert middle.w["proj.weight"].shape[1] == 2 * last.w["proj.weight"].shape[1]


def test_an_ensemble_averages_its_networks_and_each_reads_its_own_width():
    last, middle = load_span_nets().nets
    dim = last.w["proj.weight"].shape[1]
    rng = np.random.default_rng(3)

    def states(n):  # as the encoder gives them: the last layer's values, then the middle one's
        return TokenStates(rng.normal(size=(n, 2 * dim)).astype(np.float32), np.array([[2 * k, 2 * k + 1] for k in range(n)]))

    question, passage = states(3), states(6)
    args = (question, "q", [passage], ["a b c d e f"])
    alone = [net.scores(*args)[0] for net in (last, middle)]
    mixed = SpanNetEnsemble([last, middle]).scores(*args)[0]
    assert np.exp(mixed.start).sum() == pytest.approx(1.0, abs=1e-5)
    for ours, theirs in ((mixed.start, [a.start for a in alone]), (mixed.end, [a.end for a in alone])):
        # renormalizing shifts every token's mean log-probability by the same constant
        shift = ours - np.mean(theirs, axis=0)
        np.testing.assert_allclose(shift, shift[0], atol=1e-5)
    last_values_only = [TokenStates(s.vectors[:, :dim], s.offsets) for s in (question, passage)]
    narrow = last.scores(last_values_only[0], "q", [last_values_only[1]], ["a b c d e f"])[0]
    np.testing.assert_allclose(alone[0].start, narrow.start, atol=1e-5)
    assert not np.allclose(alone[0].start, alone[1].start)


def test_the_networks_run_numpy_blas_on_one_thread_and_give_it_back():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen = []

    class Probe:
        def scores(self, question, question_text, passages, passage_texts):
            seen.append(blas_threads())
            return [SpanScores(p.offsets, np.zeros(len(p.offsets)), np.zeros(len(p.offsets))) for p in passages]

    before = blas_threads()
    words = TokenStates(np.ones((3, 4), np.float32), np.array([[0, 1], [2, 3], [4, 5]]))
    SpanNetEnsemble([Probe(), Probe()]).scores(words, "a b", [words], ["a b c"])
    assert seen == [{1}, {1}]
    assert blas_threads() == before
