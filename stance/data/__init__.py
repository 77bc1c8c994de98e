"""The labelled data, from seed texts and written sets to the rows every evaluation reads.

* :mod:`~stance.data.sentences`: the seed sentence table (ids, offsets, near-duplicate groups);
* :mod:`~stance.data.similarity`: near-duplicate detection (text rules, MiniLM cosine);
* :mod:`~stance.data.annotations`: labels joined to sentences, checks on every labelled file;
* :mod:`~stance.data.articles`: mini-articles rendered from JSON blocks, spans aligned to sentences;
* :mod:`~stance.data.agreement`: inter-annotator agreement and adjudication checks;
* :mod:`~stance.data.loaders`: every labelled set as rows, the training sets, the data hash;
* :mod:`~stance.data.files`: CSV/JSON reading and writing;
* :mod:`~stance.data.build`: the dataset build (``stance build`` / ``experiments/build_dataset.py``).
"""
