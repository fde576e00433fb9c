// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TransferValidityProof} from "./IERC7857DataVerifier.sol";
import {IERC7857Metadata} from "./IERC7857Metadata.sol";

/// @title ERC-7857 cloning: a new token for `_to` with the data re-encrypted for it; the
/// original token and its owner's access are untouched.
interface IERC7857Cloneable is IERC7857Metadata {
    event Cloned(uint256 indexed _tokenId, uint256 indexed _newTokenId, address _from, address _to);

    function iCloneFrom(address _from, address _to, uint256 _tokenId, TransferValidityProof[] calldata _proofs)
        external
        returns (uint256 _newTokenId);
}
