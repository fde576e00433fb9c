// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title FlowMerkle: checking a Merkle path up the flow tree (storage.md §1.3, §1.5, §3.4).
/// @notice The flow tree is the complete binary keccak tree over `2^depth` sectors, where
/// `2^depth` is the flow length rounded up to a power of two. A path is checked by folding a
/// node up its siblings, the position's bits choosing left or right at each level. `PoraMine`
/// (a 4 KiB seal, from height 4) and `AlignmentRegistry` (one 256-byte sector, from height 0)
/// both check their answers with it; zgos/storage/spec/answer.py mirrors it.
library FlowMerkle {
    /// @notice Height of the flow tree of `flowLength` sectors: the least d with 2^d >= length.
    function depth(uint256 flowLength) internal pure returns (uint256 d) {
        while ((uint256(1) << d) < flowLength) d++;
    }

    /// @notice Fold `node` (the root of the subtree at `index` on its level) up `proof`, the
    /// siblings from that level upward; returns the root it leads to.
    function foldPath(bytes32 node, uint256 index, bytes32[] memory proof) internal pure returns (bytes32) {
        for (uint256 i = 0; i < proof.length; i++) {
            node = ((index >> i) & 1) == 0
                ? keccak256(abi.encodePacked(node, proof[i]))
                : keccak256(abi.encodePacked(proof[i], node));
        }
        return node;
    }
}
