// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {IERC7857} from "./interfaces/IERC7857.sol";
import {IERC7857Authorize} from "./interfaces/IERC7857Authorize.sol";
import {IERC7857Cloneable} from "./interfaces/IERC7857Cloneable.sol";
import {
    IERC7857DataVerifier,
    PreimageProofOutput,
    TransferValidityProof,
    TransferValidityProofOutput
} from "./interfaces/IERC7857DataVerifier.sol";
import {IERC7857Metadata, IntelligentData} from "./interfaces/IERC7857Metadata.sol";

/// @title AgentNFT: ERC-7857 agent NFTs whose encrypted data changes hands with the token.
/// @notice 0G's `IERC7857` + `IERC7857Cloneable` + `IERC7857Metadata` + `IERC7857Authorize`
/// (system.md §5.2), with these rules:
/// - A token minted with `mint(address)` carries no data and is a plain ERC-721.
/// - A token's data hashes are storage roots of ciphertexts submitted to `Flow` (checked at
///   mint and update); each comes with its key sealed to the owner, published on chain.
/// - While a token carries data it moves only through `iTransferFrom` with proofs the
///   verifier accepts (`transferFrom` reverts with `TransferNeedsProofs`): 0G lets a plain
///   ERC-721 transfer hand over a token whose data the new owner can never decrypt.
/// - A proof must re-encrypt exactly the token's current data (`ERC7857DataHashMismatch`),
///   be sealed to `to`'s own key (`ERC7857WantedReceiverMismatch`) and be accepted by `to`
///   or its access assistant (`ERC7857AccessAssistantMismatch`).
/// - Usage authorizations are cleared when the token changes owner.
contract AgentNFT is ERC721, IERC7857, IERC7857Cloneable, IERC7857Authorize {
    using EnumerableSet for EnumerableSet.AddressSet;

    uint256 public constant MAX_AUTHORIZED_USERS = 100;
    uint256 public constant MAX_DATAS = 16;
    uint256 public constant MAX_DESCRIPTION_BYTES = 256;
    uint256 public constant MAX_SEALED_KEY_BYTES = 256;

    IERC7857DataVerifier private immutable dataVerifier;
    uint256 public nextTokenId;
    mapping(uint256 tokenId => IntelligentData[]) private datas;
    mapping(uint256 tokenId => EnumerableSet.AddressSet) private authorized;
    mapping(address user => address) private assistants;
    bool private transient movingWithProofs;

    error TransferNeedsProofs(uint256 tokenId);
    error DataNotInStorage(bytes32 dataHash);
    error BadData(uint256 count);
    error UnexpectedValue();

    constructor(string memory name_, string memory symbol_, IERC7857DataVerifier verifier_) ERC721(name_, symbol_) {
        dataVerifier = verifier_;
    }

    // --- minting and data -----------------------------------------------------------------

    /// @notice Mint a token carrying `iDatas`, with each data key sealed to `to` in `sealedKeys`.
    function mint(IntelligentData[] calldata iDatas, address to, bytes[] calldata sealedKeys)
        external
        payable
        returns (uint256 tokenId)
    {
        if (msg.value != 0) revert UnexpectedValue();
        tokenId = nextTokenId++;
        _setData(tokenId, iDatas, to, sealedKeys); // first: the receiver's hook sees a token with data
        _safeMint(to, tokenId);
    }

    /// @notice Mint a token without data: a plain ERC-721 until data is added with `update`.
    function mint(address to) external payable returns (uint256 tokenId) {
        if (msg.value != 0) revert UnexpectedValue();
        tokenId = nextTokenId++;
        _safeMint(to, tokenId);
    }

    /// @notice The owner replaces the token's data (and publishes the new keys, sealed to itself).
    function update(uint256 tokenId, IntelligentData[] calldata newDatas, bytes[] calldata sealedKeys) external {
        address owner = _requireOwned(tokenId);
        if (owner != msg.sender) revert ERC721IncorrectOwner(msg.sender, tokenId, owner);
        _setData(tokenId, newDatas, owner, sealedKeys);
    }

    function _setData(uint256 tokenId, IntelligentData[] calldata newDatas, address owner, bytes[] calldata keys)
        internal
    {
        if (newDatas.length == 0 || newDatas.length > MAX_DATAS || keys.length != newDatas.length) {
            revert BadData(newDatas.length);
        }
        bytes[] memory hashes = new bytes[](newDatas.length);
        for (uint256 i = 0; i < newDatas.length; i++) {
            if (bytes(newDatas[i].dataDescription).length > MAX_DESCRIPTION_BYTES) revert BadData(i);
            if (keys[i].length > MAX_SEALED_KEY_BYTES) revert BadData(i);
            hashes[i] = abi.encode(newDatas[i].dataHash);
        }
        PreimageProofOutput[] memory found = dataVerifier.verifyPreimage(hashes);
        for (uint256 i = 0; i < found.length; i++) {
            if (!found[i].isValid) revert DataNotInStorage(found[i].dataHash);
        }
        _replaceData(tokenId, newDatas);
        emit PublishedSealedKey(owner, tokenId, keys);
    }

    function _replaceData(uint256 tokenId, IntelligentData[] memory newDatas) internal {
        IntelligentData[] memory old = datas[tokenId];
        delete datas[tokenId];
        for (uint256 i = 0; i < newDatas.length; i++) {
            datas[tokenId].push(newDatas[i]);
        }
        emit Updated(tokenId, old, newDatas);
    }

    // --- transfer and clone with proofs -----------------------------------------------------

    function iTransferFrom(address from, address to, uint256 tokenId, TransferValidityProof[] calldata proofs)
        external
    {
        (bytes[] memory sealedKeys, IntelligentData[] memory newDatas) = _checkProofs(from, to, tokenId, proofs);
        movingWithProofs = true;
        transferFrom(from, to, tokenId); // checks that the caller may move the token
        movingWithProofs = false;
        _replaceData(tokenId, newDatas);
        emit PublishedSealedKey(to, tokenId, sealedKeys);
    }

    function iCloneFrom(address from, address to, uint256 tokenId, TransferValidityProof[] calldata proofs)
        external
        returns (uint256 newTokenId)
    {
        _checkAuthorized(from, msg.sender, tokenId);
        (bytes[] memory sealedKeys, IntelligentData[] memory newDatas) = _checkProofs(from, to, tokenId, proofs);
        newTokenId = nextTokenId++;
        _replaceData(newTokenId, newDatas);
        _safeMint(to, newTokenId);
        emit Cloned(tokenId, newTokenId, from, to);
        emit PublishedSealedKey(to, newTokenId, sealedKeys);
    }

    function _checkProofs(address from, address to, uint256 tokenId, TransferValidityProof[] calldata proofs)
        internal
        returns (bytes[] memory sealedKeys, IntelligentData[] memory newDatas)
    {
        if (to == address(0)) revert ERC721InvalidReceiver(to);
        if (_ownerOf(tokenId) != from) revert ERC721InvalidSender(from);
        if (proofs.length == 0) revert ERC7857EmptyProof();
        IntelligentData[] memory current = datas[tokenId];
        if (proofs.length != current.length) revert ERC7857ProofCountMismatch();
        TransferValidityProofOutput[] memory out = dataVerifier.verifyTransferValidity(proofs);
        sealedKeys = new bytes[](out.length);
        newDatas = new IntelligentData[](out.length);
        for (uint256 i = 0; i < out.length; i++) {
            if (out[i].oldDataHash != current[i].dataHash) revert ERC7857DataHashMismatch();
            if (out[i].accessAssistant != to && out[i].accessAssistant != assistants[to]) {
                revert ERC7857AccessAssistantMismatch();
            }
            if (address(uint160(uint256(keccak256(out[i].targetPubkey)))) != to) {
                revert ERC7857WantedReceiverMismatch();
            }
            sealedKeys[i] = out[i].sealedKey;
            newDatas[i] = IntelligentData(current[i].dataDescription, out[i].dataHash);
        }
    }

    /// @dev Every change of owner clears the usage authorizations; a token with data moves
    /// between owners only inside `iTransferFrom`.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0) && datas[tokenId].length > 0 && !movingWithProofs) {
            revert TransferNeedsProofs(tokenId);
        }
        if (from != to) _clearAuthorized(tokenId);
    }

    // --- usage authorization and access assistants ----------------------------------------

    function authorizeUsage(uint256 tokenId, address user) public {
        _requireOwner(tokenId);
        if (user == address(0)) revert ERC7857InvalidAuthorizedUser(user);
        EnumerableSet.AddressSet storage users = authorized[tokenId];
        if (users.length() >= MAX_AUTHORIZED_USERS) revert ERC7857TooManyAuthorizedUsers();
        if (!users.add(user)) revert ERC7857AlreadyAuthorized();
        emit Authorization(msg.sender, user, tokenId);
    }

    function batchAuthorizeUsage(uint256 tokenId, address[] calldata users) external {
        for (uint256 i = 0; i < users.length; i++) {
            authorizeUsage(tokenId, users[i]);
        }
    }

    function revokeAuthorization(uint256 tokenId, address user) external {
        _requireOwner(tokenId);
        if (user == address(0)) revert ERC7857InvalidAuthorizedUser(user);
        if (!authorized[tokenId].remove(user)) revert ERC7857NotAuthorized();
        emit AuthorizationRevoked(msg.sender, user, tokenId);
    }

    function clearAuthorizedUsers(uint256 tokenId) external {
        _requireOwner(tokenId);
        _clearAuthorized(tokenId);
        emit AuthorizedUsersCleared(msg.sender, tokenId);
    }

    /// @notice The owner hands a sealed executor (a compute provider) the token's data keys,
    /// sealed to the executor's own key, so that it can run the agent for authorized users
    /// without anyone else seeing the data (zgos; 0G names the sealed executor but gives it no
    /// way to get the keys). A transfer or an update replaces the data: grants end with it.
    function publishExecutorKeys(uint256 tokenId, address executor, bytes[] calldata sealedKeys) external {
        _requireOwner(tokenId);
        if (sealedKeys.length != datas[tokenId].length) revert ERC7857ProofCountMismatch();
        for (uint256 i = 0; i < sealedKeys.length; i++) {
            if (sealedKeys[i].length > MAX_SEALED_KEY_BYTES) revert BadData(i);
        }
        emit PublishedSealedKey(executor, tokenId, sealedKeys);
    }

    function delegateAccess(address assistant) external {
        if (assistant == address(0)) revert ERC7857InvalidAssistant(assistant);
        assistants[msg.sender] = assistant;
        emit DelegateAccess(msg.sender, assistant);
    }

    function _requireOwner(uint256 tokenId) internal view {
        address owner = _requireOwned(tokenId);
        if (owner != msg.sender) revert ERC721IncorrectOwner(msg.sender, tokenId, owner);
    }

    function _clearAuthorized(uint256 tokenId) internal {
        EnumerableSet.AddressSet storage users = authorized[tokenId];
        while (users.length() > 0) {
            users.remove(users.at(users.length() - 1));
        }
    }

    // --- views ----------------------------------------------------------------------------

    function verifier() external view returns (IERC7857DataVerifier) {
        return dataVerifier;
    }

    function intelligentDatasOf(uint256 tokenId) external view returns (IntelligentData[] memory) {
        _requireOwned(tokenId);
        return datas[tokenId];
    }

    function authorizedUsersOf(uint256 tokenId) external view returns (address[] memory) {
        _requireOwned(tokenId);
        return authorized[tokenId].values();
    }

    function getDelegateAccess(address user) external view returns (address) {
        return assistants[user];
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, IERC165) returns (bool) {
        return interfaceId == type(IERC7857).interfaceId || interfaceId == type(IERC7857Cloneable).interfaceId
            || interfaceId == type(IERC7857Metadata).interfaceId || interfaceId == type(IERC7857Authorize).interfaceId
            || super.supportsInterface(interfaceId);
    }
}
