"""The assignment's fixed inputs: the model id, the prompt and the 404 token labels.

Copied verbatim from the assignment notebook (Part 4 prompt, Part 5 plotting code).
"""

MODEL_ID = "Qwen/Qwen3-4B"
NUM_LAYERS = 36  # decoder layers in Qwen3-4B (and in the miniature)
NUM_TOKENS = 404  # tokens in PROMPT under the Qwen3 tokenizer

PROMPT = (
    "The Eiffel Tower was originally intended to be dismantled after twenty years. Neural networks "
    "sometimes behave unpredictably when initialized with poor random seeds. Octopuses have three "
    "hearts, and two of them stop beating when they swim. If you multiply two rotation matrices, the "
    "result is another valid rotation matrix. The smell of fresh rain is partly caused by a compound "
    "called geosmin. In LaTeX, the tikz package lets you create vector graphics directly within "
    "documents. Bananas are technically berries, but strawberries are not. Quantum entanglement has "
    "been experimentally demonstrated over distances exceeding 1,000 kilometers. The longest chess "
    "game theoretically possible under current rules is 5,949 moves. Clouds can weigh millions of "
    "kilograms, yet remain suspended in the air. The prime number theorem gives an asymptotic "
    "estimate for the distribution of primes. Some species of ants farm aphids to harvest their "
    "sugary secretions. In PyTorch, gradient accumulation is often used when the GPU cannot fit large"
    " batches. Shakespeare invented, or at least popularized, over 1,700 English words. Black holes "
    "can theoretically evaporate over time through Hawking radiation. The mitochondrion is often "
    "called the powerhouse of the cell, though chloroplasts generate energy too. Airplane contrails "
    "can influence local climate patterns by trapping heat. In category theory, a functor maps "
    "objects and morphisms between categories. The Great Wall of China is not a single continuous "
    "wall but a series of fortifications. Sorting algorithms like quicksort and mergesort have "
    "different average- and worst-case complexities. Pufferfish inflate themselves by rapidly "
    "ingesting water (or air when on land). In probability, the law of large numbers states that "
    "sample averages converge to expected values. Mount Everest continues to grow taller by a few "
    "millimeters each year due to tectonic activity. The Collatz conjecture remains unsolved despite "
    "its deceptively simple definition. Some frogs can survive being frozen solid and thawing back to"
    " life."
)

# The labels list of the assignment's plotting code: one decoded string per prompt token.
LABELS = [
    "The", " E", "iff", "el", " Tower", " was", " originally", " intended", " to", " be",
    " dismant", "led", " after", " twenty", " years", ".", " Neural", " networks", " sometimes",
    " behave", " unpredict", "ably", " when", " initialized", " with", " poor", " random", " seeds",
    ".", " Oct", "op", "uses", " have", " three", " hearts", ",", " and", " two", " of", " them",
    " stop", " beating", " when", " they", " swim", ".", " If", " you", " multiply", " two",
    " rotation", " matrices", ",", " the", " result", " is", " another", " valid", " rotation",
    " matrix", ".", " The", " smell", " of", " fresh", " rain", " is", " partly", " caused", " by",
    " a", " compound", " called", " ge", "os", "min", ".", " In", " LaTeX", ",", " the", " tik",
    "z", " package", " lets", " you", " create", " vector", " graphics", " directly", " within",
    " documents", ".", " Ban", "anas", " are", " technically", " berries", ",", " but",
    " strawberries", " are", " not", ".", " Quantum", " ent", "ang", "lement", " has", " been",
    " experiment", "ally", " demonstrated", " over", " distances", " exceeding", " ", "1", ",", "0",
    "0", "0", " kilometers", ".", " The", " longest", " chess", " game", " theoretically",
    " possible", " under", " current", " rules", " is", " ", "5", ",", "9", "4", "9", " moves", ".",
    " Cloud", "s", " can", " weigh", " millions", " of", " kilograms", ",", " yet", " remain",
    " suspended", " in", " the", " air", ".", " The", " prime", " number", " theorem", " gives",
    " an", " asympt", "otic", " estimate", " for", " the", " distribution", " of", " primes", ".",
    " Some", " species", " of", " ants", " farm", " aph", "ids", " to", " harvest", " their",
    " sug", "ary", " secret", "ions", ".", " In", " Py", "T", "orch", ",", " gradient",
    " accumulation", " is", " often", " used", " when", " the", " GPU", " cannot", " fit", " large",
    " batches", ".", " Shakespeare", " invented", ",", " or", " at", " least", " popular", "ized",
    ",", " over", " ", "1", ",", "7", "0", "0", " English", " words", ".", " Black", " holes",
    " can", " theoretically", " evapor", "ate", " over", " time", " through", " Haw", "king",
    " radiation", ".", " The", " mitochond", "r", "ion", " is", " often", " called", " the",
    " powerhouse", " of", " the", " cell", ",", " though", " chlor", "oplast", "s", " generate",
    " energy", " too", ".", " Air", "plane", " contr", "ails", " can", " influence", " local",
    " climate", " patterns", " by", " trapping", " heat", ".", " In", " category", " theory", ",",
    " a", " functor", " maps", " objects", " and", " morph", "isms", " between", " categories", ".",
    " The", " Great", " Wall", " of", " China", " is", " not", " a", " single", " continuous",
    " wall", " but", " a", " series", " of", " fort", "ifications", ".", " Sorting", " algorithms",
    " like", " quick", "sort", " and", " merges", "ort", " have", " different", " average", "-",
    " and", " worst", "-case", " complexities", ".", " P", "uffer", "fish", " inflate",
    " themselves", " by", " rapidly", " ing", "esting", " water", " (", "or", " air", " when",
    " on", " land", ").", " In", " probability", ",", " the", " law", " of", " large", " numbers",
    " states", " that", " sample", " averages", " converge", " to", " expected", " values", ".",
    " Mount", " Everest", " continues", " to", " grow", " taller", " by", " a", " few", " mill",
    "imeters", " each", " year", " due", " to", " t", "ect", "onic", " activity", ".", " The",
    " Coll", "atz", " conject", "ure", " remains", " uns", "olved", " despite", " its", " de",
    "cept", "ively", " simple", " definition", ".", " Some", " frogs", " can", " survive", " being",
    " frozen", " solid", " and", " thaw", "ing", " back", " to", " life", ".",
]
assert len(LABELS) == NUM_TOKENS
