// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Batch forms of ERC-7857 usage authorization (0G's `AgentNFT` has the same selectors).
interface IERC7857Authorize {
    event AuthorizedUsersCleared(address indexed owner, uint256 indexed tokenId);

    function batchAuthorizeUsage(uint256 tokenId, address[] calldata users) external;

    function clearAuthorizedUsers(uint256 tokenId) external;
}
