// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title FineTuningServing: the fine-tuning marketplace of zgos.
/// @notice Providers offer LoRA fine-tuning of base models at a price per token. A user creates
/// a task by escrowing the fee and signing (EIP-712) the provider, base model hash, dataset root,
/// training parameters, fee and nonce. The provider starts the task, trains, uploads the
/// encrypted result to storage and records its root together with `keyCommitment`, the keccak256
/// of the sealed key it will release (the AES key sealed to the user's public key, ECIES). Only
/// the task's user can acknowledge the deliverable, and only if the root matches. Settlement pays
/// the provider at most the escrow, once: the full fee after acknowledgement, releasing exactly
/// the committed sealed key (any other key reverts `KeyMismatch`); or, if the user never
/// acknowledges within `ackTimeout`, `penaltyPercent`% of it with the rest refunded and no key.
/// Before a task starts the user can cancel it; a provider that never delivers (or never settles
/// an acknowledged task) lets the user reclaim the escrow.
///
/// Fair exchange, what the chain checks: the user acknowledges only a root it downloaded and
/// verified, and by then the key the provider will release is fixed by its own delivery
/// transaction, so it cannot be swapped after the acknowledgement. What it cannot check: that the
/// sealed key opens with the user's private key and that the AES key inside decrypts the
/// deliverable (that would need AES and ECIES in the EVM, or a proof of correct encryption). The
/// user's recourse when it does not: the evidence is public and binding (the ciphertext in
/// storage under the acknowledged root, the sealed key on chain, its commitment in the provider's
/// delivery transaction); the user reveals the opened AES key (or, if the ECIES layer itself
/// fails, the ECDH shared secret) and anyone can re-run the decryption and see it fail. The
/// escrow is not returned by this contract: the bound on the user's loss is the task's fee, and
/// the provider's loss is its public record (zgos/compute/finetune/tasks.py states the same).
/// @dev Differences from 0G's FineTuningServing (reference/compute.md §3.4): acknowledgement has
/// no unguarded overload; the signature covers base model and parameters; payouts use `call`
/// with a withdrawable fallback instead of `transfer`; every state has a timeout way out.
contract FineTuningServing is EIP712 {
    uint256 public constant PERCENT = 100;
    uint256 public constant MAX_URL_BYTES = 256;
    uint256 public constant MAX_MODELS = 16;
    uint256 public constant MAX_PAGE = 100; // entries per page of `providersPage`
    bytes32 public constant TASK_TYPEHASH = keccak256(
        "Task(address user,address provider,bytes32 baseModel,bytes32 datasetRoot,bytes32 paramsHash,uint256 fee,uint256 nonce)"
    );

    enum Status { None, Created, Started, Delivered, Acknowledged, Settled, Cancelled }

    struct Service {
        string url;
        uint256 pricePerToken; // neuron per token per epoch
        uint256 maxDatasetBytes;
        uint256 maxTokens;
        bytes32[] models; // base model hashes this provider fine-tunes
        uint64 updatedAt;
    }

    struct Task {
        address user;
        address provider;
        bytes32 baseModel;
        bytes32 datasetRoot;
        bytes32 paramsHash;
        uint256 fee; // escrowed
        uint256 nonce;
        uint64 createdAt;
        uint64 deliveredAt;
        uint64 acknowledgedAt;
        Status status;
        bytes32 resultRoot;
        bytes32 keyCommitment; // keccak256 of the sealed key, fixed at delivery
        bytes sealedKey; // released at settlement after acknowledgement
    }

    uint256 public immutable ackTimeout; // seconds a user has to acknowledge a deliverable
    uint256 public immutable deliveryTimeout; // seconds a provider has to deliver (and to settle)
    uint256 public immutable penaltyPercent; // provider's share of an unacknowledged task

    mapping(address => Service) private services;
    address[] private providerList;
    mapping(address => uint256) private providerPositions; // index + 1
    mapping(uint256 => Task) private tasks;
    mapping(address => mapping(uint256 => bool)) public nonceUsed;
    mapping(address => uint256) public withdrawable; // payouts whose direct transfer failed
    uint256 public taskCount;

    event ServiceUpdated(address indexed provider, string url, uint256 pricePerToken, uint256 maxDatasetBytes, uint256 maxTokens, bytes32[] models);
    event ServiceRemoved(address indexed provider);
    event TaskCreated(
        uint256 indexed taskId, address indexed user, address indexed provider, bytes32 baseModel,
        bytes32 datasetRoot, bytes32 paramsHash, uint256 fee, uint256 nonce, bytes params, bytes signature
    );
    event TaskStarted(uint256 indexed taskId);
    event TaskCancelled(uint256 indexed taskId, address indexed by, string reason);
    event DeliverableAdded(uint256 indexed taskId, bytes32 resultRoot, bytes32 keyCommitment);
    event DeliverableAcknowledged(uint256 indexed taskId, bytes32 resultRoot);
    event FeesSettled(uint256 indexed taskId, uint256 toProvider, uint256 refunded, bytes sealedKey);

    error InvalidService();
    error NoService(address provider);
    error ModelNotOffered(bytes32 baseModel);
    error NoFee();
    error NonceUsed(uint256 nonce);
    error BadSignature();
    error NoTask(uint256 taskId);
    error NotTaskUser(uint256 taskId);
    error NotTaskProvider(uint256 taskId);
    error WrongStatus(uint256 taskId, Status status);
    error RootMismatch(bytes32 expected, bytes32 given);
    error EmptyRoot();
    error EmptyKeyCommitment();
    error KeyMismatch(bytes32 committed, bytes32 released);
    error SealedKeyRequired();
    error SealedKeyNotAllowed();
    error TooEarly(uint256 availableAt);
    error NothingToWithdraw();
    error TransferFailed();

    constructor(uint256 ackTimeout_, uint256 deliveryTimeout_, uint256 penaltyPercent_)
        EIP712("zgos FineTuningServing", "1")
    {
        require(penaltyPercent_ <= PERCENT, "penalty over 100%");
        ackTimeout = ackTimeout_;
        deliveryTimeout = deliveryTimeout_;
        penaltyPercent = penaltyPercent_;
    }

    // --- provider services -------------------------------------------------------------

    function addOrUpdateService(
        string calldata url, uint256 pricePerToken, uint256 maxDatasetBytes, uint256 maxTokens,
        bytes32[] calldata models
    ) external {
        uint256 urlLength = bytes(url).length;
        if (urlLength == 0 || urlLength > MAX_URL_BYTES || models.length == 0 || models.length > MAX_MODELS) {
            revert InvalidService();
        }
        Service storage service = services[msg.sender];
        service.url = url;
        service.pricePerToken = pricePerToken;
        service.maxDatasetBytes = maxDatasetBytes;
        service.maxTokens = maxTokens;
        service.models = models;
        service.updatedAt = uint64(block.timestamp);
        if (providerPositions[msg.sender] == 0) {
            providerList.push(msg.sender);
            providerPositions[msg.sender] = providerList.length;
        }
        emit ServiceUpdated(msg.sender, url, pricePerToken, maxDatasetBytes, maxTokens, models);
    }

    function removeService() external {
        uint256 position = providerPositions[msg.sender];
        if (position == 0) revert NoService(msg.sender);
        address last = providerList[providerList.length - 1];
        providerList[position - 1] = last;
        providerPositions[last] = position;
        providerList.pop();
        delete providerPositions[msg.sender];
        delete services[msg.sender];
        emit ServiceRemoved(msg.sender);
    }

    function getService(address provider) external view returns (Service memory) {
        if (providerPositions[provider] == 0) revert NoService(provider);
        return services[provider];
    }

    function providerCount() external view returns (uint256) {
        return providerList.length;
    }

    /// @notice Providers `offset` .. `offset + limit` (at most MAX_PAGE) and the total: anyone can
    /// add a service, so the list has no bound and is read page by page.
    function providersPage(uint256 offset, uint256 limit) external view returns (address[] memory page, uint256 total) {
        total = providerList.length;
        if (limit > MAX_PAGE) limit = MAX_PAGE;
        uint256 count = offset >= total ? 0 : (total - offset < limit ? total - offset : limit);
        page = new address[](count);
        for (uint256 i = 0; i < count; i++) page[i] = providerList[offset + i];
    }

    // --- task lifecycle ----------------------------------------------------------------

    /// @notice Escrow `msg.value` as the fee of a task signed by the caller.
    /// @param params the exact training-parameter bytes; their keccak is what was signed.
    function createTask(
        address provider, bytes32 baseModel, bytes32 datasetRoot, bytes calldata params, uint256 nonce,
        bytes calldata signature
    ) external payable returns (uint256 taskId) {
        if (providerPositions[provider] == 0) revert NoService(provider);
        if (!_offers(services[provider].models, baseModel)) revert ModelNotOffered(baseModel);
        if (msg.value == 0) revert NoFee();
        if (nonceUsed[msg.sender][nonce]) revert NonceUsed(nonce);
        bytes32 paramsHash = keccak256(params);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(TASK_TYPEHASH, msg.sender, provider, baseModel, datasetRoot, paramsHash, msg.value, nonce))
        );
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer != msg.sender) revert BadSignature();
        nonceUsed[msg.sender][nonce] = true;
        taskId = ++taskCount;
        Task storage task = tasks[taskId];
        task.user = msg.sender;
        task.provider = provider;
        task.baseModel = baseModel;
        task.datasetRoot = datasetRoot;
        task.paramsHash = paramsHash;
        task.fee = msg.value;
        task.nonce = nonce;
        task.createdAt = uint64(block.timestamp);
        task.status = Status.Created;
        emit TaskCreated(taskId, msg.sender, provider, baseModel, datasetRoot, paramsHash, msg.value, nonce, params, signature);
    }

    /// @notice The provider takes the task: from now on the user can no longer cancel it.
    function startTask(uint256 taskId) external {
        Task storage task = _providerTask(taskId, Status.Created);
        task.status = Status.Started;
        emit TaskStarted(taskId);
    }

    /// @notice The user cancels a task the provider has not started; the escrow is refunded.
    function cancelTask(uint256 taskId) external {
        Task storage task = _userTask(taskId);
        if (task.status != Status.Created) revert WrongStatus(taskId, task.status);
        _cancel(taskId, task, "cancelled by user");
    }

    /// @notice The provider refuses a task it cannot do (bad dataset, fee below price): full refund.
    function rejectTask(uint256 taskId, string calldata reason) external {
        Task storage task = _task(taskId);
        if (msg.sender != task.provider) revert NotTaskProvider(taskId);
        if (task.status != Status.Created && task.status != Status.Started) revert WrongStatus(taskId, task.status);
        _cancel(taskId, task, reason);
    }

    /// @notice The user takes the escrow back from a provider that did not deliver (or did not
    /// settle an acknowledged task) within `deliveryTimeout`.
    function reclaimTask(uint256 taskId) external {
        Task storage task = _userTask(taskId);
        uint256 since;
        if (task.status == Status.Started) since = task.createdAt;
        else if (task.status == Status.Acknowledged) since = task.acknowledgedAt;
        else revert WrongStatus(taskId, task.status);
        if (block.timestamp < since + deliveryTimeout) revert TooEarly(since + deliveryTimeout);
        _cancel(taskId, task, "provider timed out");
    }

    /// @notice Record the encrypted deliverable's root and commit to the sealed key that
    /// settlement will release (`keyCommitment` = keccak256 of its bytes).
    function addDeliverable(uint256 taskId, bytes32 resultRoot, bytes32 keyCommitment) external {
        if (resultRoot == bytes32(0)) revert EmptyRoot();
        if (keyCommitment == bytes32(0)) revert EmptyKeyCommitment();
        Task storage task = _providerTask(taskId, Status.Started);
        task.resultRoot = resultRoot;
        task.keyCommitment = keyCommitment;
        task.deliveredAt = uint64(block.timestamp);
        task.status = Status.Delivered;
        emit DeliverableAdded(taskId, resultRoot, keyCommitment);
    }

    /// @notice Only the task's user acknowledges, naming the root it downloaded and verified.
    function acknowledgeDeliverable(uint256 taskId, bytes32 resultRoot) external {
        Task storage task = _userTask(taskId);
        if (task.status != Status.Delivered) revert WrongStatus(taskId, task.status);
        if (resultRoot != task.resultRoot) revert RootMismatch(task.resultRoot, resultRoot);
        task.status = Status.Acknowledged;
        task.acknowledgedAt = uint64(block.timestamp);
        emit DeliverableAcknowledged(taskId, resultRoot);
    }

    /// @notice The provider settles once: acknowledged → full fee against the committed sealed
    /// key; delivered but unacknowledged after `ackTimeout` → penalty share, no key.
    function settleFees(uint256 taskId, bytes calldata sealedKey) external {
        Task storage task = _task(taskId);
        if (msg.sender != task.provider) revert NotTaskProvider(taskId);
        uint256 toProvider;
        if (task.status == Status.Acknowledged) {
            if (sealedKey.length == 0) revert SealedKeyRequired();
            bytes32 released = keccak256(sealedKey);
            if (released != task.keyCommitment) revert KeyMismatch(task.keyCommitment, released);
            task.sealedKey = sealedKey;
            toProvider = task.fee;
        } else if (task.status == Status.Delivered) {
            if (block.timestamp < task.deliveredAt + ackTimeout) revert TooEarly(task.deliveredAt + ackTimeout);
            if (sealedKey.length != 0) revert SealedKeyNotAllowed();
            toProvider = task.fee * penaltyPercent / PERCENT;
        } else {
            revert WrongStatus(taskId, task.status);
        }
        uint256 refund = task.fee - toProvider;
        task.status = Status.Settled;
        emit FeesSettled(taskId, toProvider, refund, sealedKey);
        _pay(task.provider, toProvider);
        _pay(task.user, refund);
    }

    function withdraw() external {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        withdrawable[msg.sender] = 0;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    function getTask(uint256 taskId) external view returns (Task memory) {
        return _task(taskId);
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // --- internals ---------------------------------------------------------------------

    function _task(uint256 taskId) private view returns (Task storage task) {
        task = tasks[taskId];
        if (task.status == Status.None) revert NoTask(taskId);
    }

    function _userTask(uint256 taskId) private view returns (Task storage task) {
        task = _task(taskId);
        if (msg.sender != task.user) revert NotTaskUser(taskId);
    }

    function _providerTask(uint256 taskId, Status expected) private view returns (Task storage task) {
        task = _task(taskId);
        if (msg.sender != task.provider) revert NotTaskProvider(taskId);
        if (task.status != expected) revert WrongStatus(taskId, task.status);
    }

    function _cancel(uint256 taskId, Task storage task, string memory reason) private {
        task.status = Status.Cancelled;
        emit TaskCancelled(taskId, msg.sender, reason);
        _pay(task.user, task.fee);
    }

    /// @dev Effects are done before this is called; a recipient that rejects the payment gets
    /// it credited to `withdrawable` instead of blocking the settlement.
    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount, gas: 30_000}("");
        if (!ok) withdrawable[to] += amount;
    }

    function _offers(bytes32[] storage models, bytes32 model) private view returns (bool) {
        for (uint256 i = 0; i < models.length; i++) {
            if (models[i] == model) return true;
        }
        return false;
    }
}
