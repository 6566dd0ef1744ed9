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


# The assignment's own markdown (task statement and part headers), so that a student's answer can
# be told apart from text they were given.
TEMPLATE_MARKDOWN = [
    '# TASK\n\nYour task is to project the tokens in the residual stream to the unit sphere and visualize how the tokens move along the sphere. Before starting, make sure to be using a GPU or TPU runtime.\n\n## Part 1: Load the Model\n\nUse the `transformers` library to load the `Qwen3-4B` model and its tokenizer. The model can be found at: https://huggingface.co/Qwen/Qwen3-4B. It may take some time to download.  \n\n## Part 2: Trace the Model\n\nPrint the loaded model. Draw a diagram of how the tokens flow through a decoder layer in this model. The diagram can abstract away the mathematical equations but should include the locations of the skip connections and the respective modules that were printed in the print statement.\n\nHint: The `Qwen3DecoderLayer` class found here: https://github.com/huggingface/transformers/blob/main/src/transformers/models/qwen3/modeling_qwen3.py could be useful.\n\nThe diagram can be uploaded as an image with your submission on Quercus.\n\n## Part 3: Creating Forward Hooks\n\nFor each decoder layer, we want to save the itermediate representations of the tokens. This can be done via *forward hooks*. https://docs.pytorch.org/docs/stable/generated/torch.nn.modules.module.register_module_forward_hook.html.\n\nUnderstand how these work. Using the diagram you created in Part 2,\n\n1. Determine which module you should attach a forward hook to if you want to save the representations of the tokens at the input to each decoder layer.\n\n2. Create a forward hook that does this and saves the representations into a Python dictionary that is indexed by the layer number.\n\nAttach the forward hooks to the model.\n\n## Part 4: Prompting the LLM\n\nPass the following prompt through the LLM:\n\n`The Eiffel Tower was originally intended to be dismantled after twenty years. Neural networks sometimes behave unpredictably when initialized with poor random seeds. Octopuses have three hearts, and two of them stop beating when they swim. If you multiply two rotation matrices, the result is another valid rotation matrix. The smell of fresh rain is partly caused by a compound called geosmin. In LaTeX, the tikz package lets you create vector graphics directly within documents. Bananas are technically berries, but strawberries are not. Quantum entanglement has been experimentally demonstrated over distances exceeding 1,000 kilometers. The longest chess game theoretically possible under current rules is 5,949 moves. Clouds can weigh millions of kilograms, yet remain suspended in the air. The prime number theorem gives an asymptotic estimate for the distribution of primes. Some species of ants farm aphids to harvest their sugary secretions. In PyTorch, gradient accumulation is often used when the GPU cannot fit large batches. Shakespeare invented, or at least popularized, over 1,700 English words. Black holes can theoretically evaporate over time through Hawking radiation. The mitochondrion is often called the powerhouse of the cell, though chloroplasts generate energy too. Airplane contrails can influence local climate patterns by trapping heat. In category theory, a functor maps objects and morphisms between categories. The Great Wall of China is not a single continuous wall but a series of fortifications. Sorting algorithms like quicksort and mergesort have different average- and worst-case complexities. Pufferfish inflate themselves by rapidly ingesting water (or air when on land). In probability, the law of large numbers states that sample averages converge to expected values. Mount Everest continues to grow taller by a few millimeters each year due to tectonic activity. The Collatz conjecture remains unsolved despite its deceptively simple definition. Some frogs can survive being frozen solid and thawing back to life.`\n\n## Part 5: Visualizing the Representations\n\nFor each layer:\n\n1. Take the saved representations, apply PCA, and extract the top 3 principal components.\n\n2. Project each token onto the top three principal components, giving a 3xN dimensional tensor where N is the number of tokens inside the prompt.\n\n3. Normalize each of the projected N tokens to have unit norm so that they are on the unit sphere.\n\nThe rest of the plotting code is provided. Upload the `tokens.gif` with your submission.\n\nIn 1-2 sentences, explain what you see happening to the tokens as they move through the model?',
    "## Part 1", "## Part 2", "## Part 3", "## Part 4", "## Part 5",
    "In 1-2 sentences, explain what you see happening to the tokens as they move through the model?",
]
