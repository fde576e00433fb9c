// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC7857DataVerifier, TransferValidityProof} from "./IERC7857DataVerifier.sol";
import {IERC7857Metadata, IntelligentData} from "./IERC7857Metadata.sol";

/// @title ERC-7857: an NFT whose private data changes hands with the token (system.md §5).
/// @notice Function selectors, events and errors are those of 0G's `IERC7857`, so a tool
/// written against 0G's interface works unchanged.
interface IERC7857 is IERC721, IERC7857Metadata {
    error ERC7857InvalidAuthorizedUser(address);
    error ERC7857TooManyAuthorizedUsers();
    error ERC7857AlreadyAuthorized();
    error ERC7857InvalidAssistant(address);
    error ERC7857EmptyProof();
    error ERC7857ProofCountMismatch();
    error ERC7857DataHashMismatch();
    error ERC7857AccessAssistantMismatch();
    error ERC7857WantedReceiverMismatch();
    error ERC7857EncryptedPubKeyMismatch();
    error ERC7857NotAuthorized();

    event Updated(uint256 indexed _tokenId, IntelligentData[] _oldDatas, IntelligentData[] _newDatas);
    event Authorization(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    event AuthorizationRevoked(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    event PublishedSealedKey(address indexed _to, uint256 indexed _tokenId, bytes[] _sealedKeys);
    event DelegateAccess(address indexed _user, address indexed _assistant);

    function verifier() external view returns (IERC7857DataVerifier);

    /// @notice Move `_tokenId` to `_to` together with its data, re-encrypted for `_to`.
    function iTransferFrom(address _from, address _to, uint256 _tokenId, TransferValidityProof[] calldata _proofs)
        external;

    /// @notice Let `_user` use (not read) the token's data through a sealed executor.
    function authorizeUsage(uint256 _tokenId, address _user) external;

    function revokeAuthorization(uint256 _tokenId, address _user) external;

    /// @notice Let `_assistant` sign access proofs for the caller.
    function delegateAccess(address _assistant) external;

    function authorizedUsersOf(uint256 _tokenId) external view returns (address[] memory);

    function getDelegateAccess(address _user) external view returns (address);
}
