// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {FineTuningServing} from "./FineTuningServing.sol";
import {Flow} from "./storage/Flow.sol";

/// @title ModelRegistry: the provenance graph of zgos models.
/// @notice Every model is a node. A base model has no parent; its id is the storage root of its
/// file, and only the file's uploader (the first `Flow` submitter of that root) can register
/// it. A fine-tuned model points to its parent (the task's base model), the dataset roots it
/// was trained on, the fine-tuning task and the trainer (the task's provider); its id is derived
/// here from the task (`tunedModelId`), it can be registered only by the task's user, only once
/// the task is settled with an acknowledged deliverable, and the registry copies parent,
/// dataset, trainer and deliverable root from the task rather than trusting the caller. The
/// lineage of any model is `lineage(id)`: a chain query walking parents to the root.
/// @dev Squatting: a tuned id is public once its task exists, and `Flow` accepts any node root,
/// so anyone could become the "uploader" of a tuned id by submitting a fake file with that root.
/// Tuned ids therefore carry an 8-byte tag (`TUNED_ID_TAG`) and a base model id with that tag is
/// refused: a real content root has the tag with probability 2^-64. The one window left is the
/// mempool: whoever's `Flow.submit` of a root is mined first owns it.
/// 0G records a dataset root and result root per task but has no lineage (system.md §4).
contract ModelRegistry {
    uint256 public constant MAX_LINEAGE = 64;
    uint256 public constant MAX_TEXT_BYTES = 256;
    bytes32 public constant TUNED_ID_TAG = bytes32(bytes8("zgos-ft1"));
    bytes32 private constant TAG_MASK = bytes32(bytes8(type(uint64).max));

    struct Model {
        bytes32 id; // content root of the model (base GGUF, or the tuned adapter)
        bytes32 parent; // 0 for a base model
        bytes32[] datasets; // dataset roots it was trained on
        uint256 taskId; // FineTuningServing task, 0 for a base model
        bytes32 deliverableRoot; // the encrypted deliverable's root (0 for a base model)
        address trainer; // the provider who trained it (publisher for a base model)
        address owner;
        string name;
        string licence;
        uint64 registeredAt;
    }

    FineTuningServing public immutable fineTuning;
    Flow public immutable flow;
    mapping(bytes32 => Model) private models;
    mapping(uint256 => bytes32) public modelOfTask;
    bytes32[] private modelIds;

    event ModelRegistered(
        bytes32 indexed id, bytes32 indexed parent, uint256 indexed taskId, address trainer, address owner,
        bytes32[] datasets, bytes32 deliverableRoot, string name, string licence
    );
    event OwnershipTransferred(bytes32 indexed id, address indexed from, address indexed to);

    error EmptyId();
    error AlreadyRegistered(bytes32 id);
    error UnknownModel(bytes32 id);
    error TextTooLong();
    error NotModelOwner(bytes32 id);
    error NotTaskUser(uint256 taskId);
    error TaskNotSettled(uint256 taskId);
    error TaskAlreadyRegistered(uint256 taskId, bytes32 id);
    error ParentNotRegistered(bytes32 parent);
    error NotUploader(bytes32 id, address uploader);
    error ReservedId(bytes32 id);

    constructor(FineTuningServing fineTuning_, Flow flow_) {
        fineTuning = fineTuning_;
        flow = flow_;
    }

    /// @notice Register the base model whose file (storage root `id`) the caller uploaded.
    function registerBaseModel(bytes32 id, string calldata name, string calldata licence) external {
        if (id & TAG_MASK == TUNED_ID_TAG) revert ReservedId(id);
        (address uploader,) = flow.fileOf(id);
        if (uploader != msg.sender) revert NotUploader(id, uploader);
        bytes32[] memory none;
        _register(id, bytes32(0), none, 0, bytes32(0), msg.sender, name, licence);
    }

    /// @notice The id of the model fine-tuning task `taskId` produces: TUNED_ID_TAG in the top 8
    /// bytes, then the top 24 bytes of keccak256(abi.encode(chainid, fineTuning, taskId,
    /// baseModel, resultRoot)): it names the task and binds the base model and the (encrypted)
    /// adapter it delivered. Defined once the task is delivered.
    function tunedModelId(uint256 taskId) external view returns (bytes32) {
        return _tunedModelId(taskId, fineTuning.getTask(taskId));
    }

    function _tunedModelId(uint256 taskId, FineTuningServing.Task memory task) private view returns (bytes32) {
        bytes32 digest = keccak256(abi.encode(block.chainid, address(fineTuning), taskId, task.baseModel, task.resultRoot));
        return TUNED_ID_TAG | (digest >> 64);
    }

    /// @notice Register the model a settled, acknowledged fine-tuning task produced; its id is
    /// `tunedModelId(taskId)`.
    function registerFineTunedModel(uint256 taskId, string calldata name, string calldata licence)
        external
        returns (bytes32 id)
    {
        FineTuningServing.Task memory task = fineTuning.getTask(taskId);
        if (msg.sender != task.user) revert NotTaskUser(taskId);
        if (task.status != FineTuningServing.Status.Settled || task.sealedKey.length == 0) {
            revert TaskNotSettled(taskId);
        }
        if (modelOfTask[taskId] != bytes32(0)) revert TaskAlreadyRegistered(taskId, modelOfTask[taskId]);
        if (models[task.baseModel].registeredAt == 0) revert ParentNotRegistered(task.baseModel);
        bytes32[] memory datasets = new bytes32[](1);
        datasets[0] = task.datasetRoot;
        id = _tunedModelId(taskId, task);
        modelOfTask[taskId] = id;
        _register(id, task.baseModel, datasets, taskId, task.resultRoot, task.provider, name, licence);
    }

    function transferOwnership(bytes32 id, address to) external {
        Model storage model = _model(id);
        if (msg.sender != model.owner) revert NotModelOwner(id);
        model.owner = to;
        emit OwnershipTransferred(id, msg.sender, to);
    }

    function getModel(bytes32 id) external view returns (Model memory) {
        return _model(id);
    }

    function isRegistered(bytes32 id) external view returns (bool) {
        return models[id].registeredAt != 0;
    }

    /// @notice The model and its ancestors, `id` first and the base model last.
    function lineage(bytes32 id) external view returns (Model[] memory chain) {
        Model[] memory buffer = new Model[](MAX_LINEAGE);
        uint256 length;
        bytes32 current = id;
        while (current != bytes32(0) && length < MAX_LINEAGE) {
            buffer[length++] = _model(current);
            current = buffer[length - 1].parent;
        }
        chain = new Model[](length);
        for (uint256 i = 0; i < length; i++) chain[i] = buffer[i];
    }

    function modelCount() external view returns (uint256) {
        return modelIds.length;
    }

    function modelAt(uint256 index) external view returns (bytes32) {
        return modelIds[index];
    }

    function _model(bytes32 id) private view returns (Model storage model) {
        model = models[id];
        if (model.registeredAt == 0) revert UnknownModel(id);
    }

    function _register(
        bytes32 id, bytes32 parent, bytes32[] memory datasets, uint256 taskId, bytes32 deliverableRoot,
        address trainer, string calldata name, string calldata licence
    ) private {
        if (id == bytes32(0)) revert EmptyId();
        if (models[id].registeredAt != 0) revert AlreadyRegistered(id);
        if (bytes(name).length > MAX_TEXT_BYTES || bytes(licence).length > MAX_TEXT_BYTES) revert TextTooLong();
        Model storage model = models[id];
        model.id = id;
        model.parent = parent;
        model.datasets = datasets;
        model.taskId = taskId;
        model.deliverableRoot = deliverableRoot;
        model.trainer = trainer;
        model.owner = msg.sender;
        model.name = name;
        model.licence = licence;
        model.registeredAt = uint64(block.timestamp);
        modelIds.push(id);
        emit ModelRegistered(id, parent, taskId, trainer, msg.sender, datasets, deliverableRoot, name, licence);
    }
}
