// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";

/// @notice One piece of an agent's private data: what it is, and the storage root of its
/// ciphertext (system.md §5.2; 0G's `IntelligentData`).
struct IntelligentData {
    string dataDescription;
    bytes32 dataHash;
}

/// @title The metadata of an ERC-7857 token: its intelligent data, with the ERC-721 name and symbol.
interface IERC7857Metadata is IERC721Metadata {
    /// @notice The data of `tokenId`, in order; empty for a token minted as a plain ERC-721.
    function intelligentDatasOf(uint256 tokenId) external view returns (IntelligentData[] memory);
}
