// Reference trees from the npm library @openzeppelin/merkle-tree, for tests/chain/test_merkle.py.
// stdin:  {"encoding": [...], "trees": [[leaf values, ...], ...], "dumps": [python dumps]}
// stdout: {"trees": [{root, proofs, dump}], "loaded": [{root, verified}]}
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const { encoding, trees, dumps } = JSON.parse(input);
  const built = trees.map((leaves) => {
    const tree = StandardMerkleTree.of(leaves, encoding);
    return { root: tree.root, proofs: leaves.map((_, i) => tree.getProof(i)), dump: tree.dump() };
  });
  const loaded = dumps.map((dump) => {
    const tree = StandardMerkleTree.load(dump); // validates every node and value
    const verified = [...tree.entries()].every(([i, leaf]) =>
      StandardMerkleTree.verify(tree.root, encoding, leaf, tree.getProof(i)),
    );
    return { root: tree.root, verified };
  });
  process.stdout.write(JSON.stringify({ trees: built, loaded }));
});
